# The one symbol of the Periscope trace plugin that is not C#: QEMU reads the plugin API version the plugin was
# written against as a data symbol, `int qemu_plugin_version`, and Native AOT cannot export data. Version 1 is the
# API of Debian's QEMU 7.2 (qemu-system-x86_64 7.2.x), the one Periscope.QemuPlugin declares.
        .data
        .globl  qemu_plugin_version
        .type   qemu_plugin_version, @object
        .size   qemu_plugin_version, 4
        .p2align 2
qemu_plugin_version:
        .long   1
        .section .note.GNU-stack,"",@progbits
