# ps --full, namespaces and mounts (ViewsTests): each process's own /proc view. cmdline and environ as hex (they hold
# NULs and anything else); the status lines ps --full reproduces; every ns link; the cgroup file.
for p in /proc/[0-9]*; do
  echo "@@BEGIN views-proc ${p#/proc/}"
  echo "cmdline $(od -An -tx1 -v $p/cmdline 2>/dev/null | tr -d ' \n')"
  echo "environ $(od -An -tx1 -v $p/environ 2>/dev/null | tr -d ' \n')"
  echo "stat $(cat $p/stat 2>/dev/null)"
  grep -E '^(Uid|Gid|CapInh|CapPrm|CapEff|CapBnd|CapAmb):' $p/status 2>/dev/null
  for n in $p/ns/*; do l=$(readlink $n 2>/dev/null) && echo "ns ${n##*/} $l"; done
  while IFS= read -r c; do echo "cgroup $c"; done < $p/cgroup
done
echo "@@BEGIN views-mountinfo 1"
cat /proc/1/mountinfo
for p in /proc/[0-9]*; do
  if [ "$(cat $p/cmdline 2>/dev/null | tr '\0' ' ')" = "sleep 100003 " ]; then
    echo "@@BEGIN views-mountinfo ${p#/proc/}"
    cat $p/mountinfo
  fi
done
