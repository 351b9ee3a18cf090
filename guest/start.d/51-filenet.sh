# psxview, lsof, sockets, dump process (issue 13 part B): loopback up, then /bin/netfiles holding known files and sockets,
# and /bin/uidsocks holding a TCP and a UDP socket as uid 4242 (the socket uid column, with and without BTF).
ip link set lo up
/bin/netfiles > /tmp/netfiles.out 2>&1 &
/bin/uidsocks > /tmp/uidsocks.out 2>&1 &
