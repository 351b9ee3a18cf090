# The kernel log as the guest's own syslog interface shows it (busybox dmesg -r: "<priority>[seconds] text"), for
# DmesgTests: compared line by line with what Periscope reads from the printk ring buffer.
echo "@@BEGIN dmesg"
dmesg -r
