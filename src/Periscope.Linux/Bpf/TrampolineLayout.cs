using Periscope.Linux.Btf;
using Periscope.Linux.Kallsyms;

namespace Periscope.Linux.Bpf;

/// <summary>How entries of a progs_hlist hang on a bpf_trampoline, one shape per kernel generation (BTF tells which).</summary>
internal enum TrampolineEntryKind
{
    /// <summary>Before 6.0: bpf_prog_aux.tramp_hlist; the program is aux->prog.</summary>
    ProgAux,
    /// <summary>6.0 to 6.x: bpf_tramp_link.tramp_hlist; the program is the embedded link's prog.</summary>
    TrampLink,
    /// <summary>7.x: bpf_tramp_node.tramp_hlist (a link may own several nodes, one per trampoline list it is on); the
    /// program is node->link->prog.</summary>
    TrampNode,
}

/// <summary>
/// Where the kernel keeps its bpf trampolines and how their program lists are linked, read from BTF and kallsyms:
/// until 6.x one hash table, trampoline_table, chains trampolines through bpf_trampoline.hlist; 7.x keeps two tables
/// over the same trampolines (trampoline_key_table through hlist_key, by attach key; trampoline_ip_table through
/// hlist_ip, by traced address) and the key table still holds every trampoline, so it is the one walked.
/// </summary>
internal sealed record TrampolineLayout(string TableName, ulong Table, string TableNode, TrampolineEntryKind Entries)
{
    /// <summary>Null when this kernel has no trampoline table it can be read through (no CONFIG_BPF_JIT, or a shape not
    /// known here: the caller says the view is unavailable rather than guessing).</summary>
    public static TrampolineLayout? From(BtfTypes btf, KernelSymbols symbols)
    {
        var tramp = btf.FindStruct("bpf_trampoline");
        if (tramp is null || !tramp.HasMember("progs_hlist")) return null;
        (string Table, string Node)? table =
            tramp.HasMember("hlist") && symbols.TryGetAddress("trampoline_table", out _) ? ("trampoline_table", "hlist")
            : tramp.HasMember("hlist_key") && symbols.TryGetAddress("trampoline_key_table", out _) ? ("trampoline_key_table", "hlist_key")
            : null;
        if (table is not { } t) return null;
        TrampolineEntryKind? entries =
            btf.FindStruct("bpf_tramp_node") is { } node && node.HasMember("tramp_hlist") && node.HasMember("link") ? TrampolineEntryKind.TrampNode
            : btf.FindStruct("bpf_tramp_link") is { } link && link.HasMember("tramp_hlist") ? TrampolineEntryKind.TrampLink
            : btf.FindStruct("bpf_prog_aux") is { } aux && aux.HasMember("tramp_hlist") ? TrampolineEntryKind.ProgAux
            : null;
        if (entries is not { } e) return null;
        symbols.TryGetAddress(t.Table, out ulong address);
        return new TrampolineLayout(t.Table, address, t.Node, e);
    }

    /// <summary>The bpf_prog of the progs_hlist node at <paramref name="entry"/>.</summary>
    /// <exception cref="Objects.ObjectFaultException">A pointer on the way cannot be read.</exception>
    public ulong ProgramOf(LinuxKernel kernel, ulong entry) => Entries switch
    {
        TrampolineEntryKind.TrampNode => kernel.Object("bpf_tramp_node", entry).ContainerOf("bpf_tramp_node", "tramp_hlist")["link"].Deref()["prog"].ReadPointer(),
        TrampolineEntryKind.TrampLink => kernel.Object("bpf_tramp_link", entry).ContainerOf("bpf_tramp_link", "tramp_hlist")["link.prog"].ReadPointer(),
        _ => kernel.Object("bpf_prog_aux", entry).ContainerOf("bpf_prog_aux", "tramp_hlist")["prog"].ReadPointer(),
    };
}
