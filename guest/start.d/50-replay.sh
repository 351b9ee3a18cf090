# Record/replay tests (issue 12): with periscope.replay_attack=NR on the kernel command line, the tamper module replaces
# sys_call_table[NR] at a random moment 5-19 s after /init has printed the ground truth (while it prints, PID 1's
# stdout is ttyS1), so the test does not know when; "periscope-replay: attacked" follows on the console a few seconds
# later. Without that parameter nothing happens.
case " $(cat /proc/cmdline) " in
  *" periscope.replay_attack="*)
    replay_nr=$(sed 's/.*periscope\.replay_attack=\([0-9]*\).*/\1/' /proc/cmdline)
    ( n=0; while [ "$(readlink /proc/1/fd/1)" != /dev/ttyS1 ] && [ $n -lt 600 ]; do sleep 1; n=$((n + 1)); done
      while [ "$(readlink /proc/1/fd/1)" = /dev/ttyS1 ]; do sleep 1; done
      sleep $((5 + RANDOM % 15)); insmod /lib/modules/periscope_tamper.ko && echo "syscall $replay_nr" > /proc/periscope_tamper
      sleep 3; echo "periscope-replay: attacked" > /dev/console ) &
    ;;
esac
