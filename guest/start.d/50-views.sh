# Views (issue 13 part A; ViewsTests): a process with a known environment and command line, in new uts, mount, net and
# ipc namespaces, moved into a cgroup v2 group named the way docker names a container's scope.
mkdir -p /sys/fs/cgroup
mount -t cgroup2 none /sys/fs/cgroup 2>/dev/null
views_cg=/sys/fs/cgroup/system.slice/docker-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope
mkdir -p "$views_cg"
# A shared mount (its peer in the unshared namespace below shares its group): mountinfo's "shared:N", which 6.17+
# kernels flag in mount.mnt_t_flags instead of vfsmount.mnt_flags.
mkdir -p /mnt/pshared && mount -t tmpfs pshared /mnt/pshared && mount --make-shared /mnt/pshared
env -i VIEWS_MARK=periscope-env-42 PATH=/bin unshare -u -m -n -i sleep 100003 &
echo $! > "$views_cg/cgroup.procs"
