// sysseq: a known sequence of syscalls for Periscope's trace tests (issue 10), with the program's own account of
// them printed on stdout (the guest's command port), which the tests compare with what the trace plugin saw.
//
//   sysseq calls   the sequence, between two marker calls getpgid(4242) ... getpgid(4343); prints one line per call
//                  ("CALL name arg ret") and the count per syscall ("COUNT name n"), then "DONE".
//   sysseq exec    forks a child that execs /bin/sysseq with a known argv, and from a second thread forks another
//                  child that does the same; prints "PARENT pid", "CHILD pid argv...". Each child prints "EXECED pid ppid".
//   sysseq child ARGS...   what the exec'd children run: prints "EXECED pid ppid" and exits 7.
//   sysseq loop N  N getppid calls (benchmark), prints the elapsed nanoseconds.
//   sysseq tick    a getppid every 100 ms, forever (a process whose code is measured at each of its syscalls).
//   sysseq late    prints "LATE <page>" (the page of late_code), waits for /tmp/late.go to exist, then runs late_code
//                  (so that page becomes resident only now), prints "TOUCHED <result>" and ticks like `tick`.
//   sysseq progress N  forever: N getppid calls, then one line "PROGRESS <round>" to /tmp/progress (the last one only).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long ret_of(long r) { return r < 0 ? -errno : r; }

/* late_code sits alone in a 64 KiB-aligned window of its own (padding up to the next window): the kernel maps file
 * pages around a fault in aligned 64 KiB windows (fault-around), so no other code's fault makes it resident early. */
int late_code(int x);
__asm__(".pushsection .text.late,\"ax\",@progbits\n"
        ".balign 65536\n"
        ".globl late_code\n"
        ".type late_code,@function\n"
        "late_code:\n"
        "  lea 3(%rdi,%rdi,2), %eax\n"
        "  ret\n"
        ".balign 65536, 0xcc\n"
        ".popsection\n");

static int run_calls(void)
{
    char lines[64][160];
    int n = 0;
    int c_openat = 0, c_read = 0, c_close = 0, c_getppid = 0, c_newfstatat = 0, c_socket = 0, c_connect = 0;
    char buf[16];
    struct stat st;
    syscall(SYS_getpgid, 4242);
    for (int i = 0; i < 5; i++) {
        char path[64];
        snprintf(path, sizeof path, "/etc/sysseq-missing-%d", i);
        long r = ret_of(syscall(SYS_openat, AT_FDCWD, path, O_RDONLY));
        c_openat++;
        snprintf(lines[n++], 160, "CALL openat %s %ld", path, r);
    }
    long fd = ret_of(syscall(SYS_openat, AT_FDCWD, "/bin/busybox", O_RDONLY));
    c_openat++;
    snprintf(lines[n++], 160, "CALL openat /bin/busybox %ld", fd);
    for (int i = 0; i < 3; i++) {
        long r = ret_of(syscall(SYS_read, fd, buf, sizeof buf));
        c_read++;
        snprintf(lines[n++], 160, "CALL read %ld %ld", fd, r);
    }
    long r = ret_of(syscall(SYS_close, fd));
    c_close++;
    snprintf(lines[n++], 160, "CALL close %ld %ld", fd, r);
    for (int i = 0; i < 4; i++) {
        r = ret_of(syscall(SYS_getppid));
        c_getppid++;
        snprintf(lines[n++], 160, "CALL getppid - %ld", r);
    }
    for (int i = 0; i < 2; i++) {
        r = ret_of(syscall(SYS_newfstatat, AT_FDCWD, "/bin", &st, 0));
        c_newfstatat++;
        snprintf(lines[n++], 160, "CALL newfstatat /bin %ld", r);
    }
    long s = ret_of(syscall(SYS_socket, AF_UNIX, SOCK_STREAM, 0));
    c_socket++;
    snprintf(lines[n++], 160, "CALL socket - %ld", s);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    strcpy(sa.sun_path, "/tmp/sysseq-nobody.sock");
    r = ret_of(syscall(SYS_connect, s, &sa, sizeof sa));
    /* Reuse the buffer at once: a tracer that read the sockaddr after the call would show this, not the address the
     * kernel was given (the plugin copies it when the call enters). */
    strcpy(sa.sun_path, "/tmp/sysseq-rewritten.sock");
    __asm__ volatile("" : : "r"(&sa) : "memory");
    c_connect++;
    snprintf(lines[n++], 160, "CALL connect /tmp/sysseq-nobody.sock %ld", r);
    r = ret_of(syscall(SYS_close, s));
    c_close++;
    snprintf(lines[n++], 160, "CALL close %ld %ld", s, r);
    syscall(SYS_getpgid, 4343);
    printf("PID %d\n", getpid());
    for (int i = 0; i < n; i++) printf("%s\n", lines[i]);
    printf("COUNT openat %d\nCOUNT read %d\nCOUNT close %d\nCOUNT getppid %d\nCOUNT newfstatat %d\nCOUNT socket %d\nCOUNT connect %d\n",
           c_openat, c_read, c_close, c_getppid, c_newfstatat, c_socket, c_connect);
    printf("DONE\n");
    return 0;   /* exits at once: every argument the test checks was copied by the plugin when the call entered */
}

static pid_t spawn(const char *tag)
{
    pid_t pid = fork();
    if (pid == 0) {
        char *argv[] = { "sysseq", "child", (char *)tag, "alpha beta", NULL };
        execv("/bin/sysseq", argv);
        _exit(127);
    }
    return pid;
}

static void *thread_fork(void *arg)
{
    *(pid_t *)arg = spawn("from-thread");
    /* The tracer attributes a syscall to its task by reading that task's kernel stack after the event; a thread that
     * is gone by then is counted as an unknown task (a known limit, see README). Stay alive meanwhile. */
    sleep(2);
    return NULL;
}

static int run_exec(void)
{
    printf("PARENT %d\n", getpid());
    pid_t a = spawn("from-main");
    pid_t b = 0;
    pthread_t t;
    pthread_create(&t, NULL, thread_fork, &b);
    pthread_join(t, NULL);
    int status;
    waitpid(a, &status, 0);
    printf("CHILD %d from-main exit %d\n", a, WEXITSTATUS(status));
    waitpid(b, &status, 0);
    printf("CHILD %d from-thread exit %d\n", b, WEXITSTATUS(status));
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 2 && strcmp(argv[1], "calls") == 0) return run_calls();
    if (argc >= 2 && strcmp(argv[1], "exec") == 0) return run_exec();
    if (argc >= 2 && strcmp(argv[1], "child") == 0) {
        printf("EXECED %d %d\n", getpid(), getppid());
        sleep(1);   /* alive while the tracer proves which stack is ours; exit_group is then attributed after we are gone */
        return 7;
    }
    if (argc >= 3 && strcmp(argv[1], "loop") == 0) {
        long n = atol(argv[2]);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (long i = 0; i < n; i++) syscall(SYS_getppid);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        printf("LOOP %ld %lld\n", n, (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec));
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "late") == 0) {
        printf("LATE 0x%lx\n", (unsigned long)late_code & ~0xfffUL);
        while (access("/tmp/late.go", F_OK) != 0) usleep(50000);
        printf("TOUCHED %d\n", late_code(5));
        for (;;) {
            syscall(SYS_getppid);
            usleep(100000);
        }
    }
    if (argc >= 3 && strcmp(argv[1], "progress") == 0) {
        long n = atol(argv[2]);
        for (long round = 1;; round++) {
            for (long i = 0; i < n; i++) syscall(SYS_getppid);
            FILE *f = fopen("/tmp/progress.tmp", "w");
            if (f) { fprintf(f, "PROGRESS %ld\n", round); fclose(f); rename("/tmp/progress.tmp", "/tmp/progress"); }
        }
    }
    if (argc >= 2 && strcmp(argv[1], "tick") == 0) {
        for (;;) {
            syscall(SYS_getppid);
            usleep(100000);
        }
    }
    fprintf(stderr, "usage: sysseq calls | exec | child ARGS | loop N | tick | late | progress N\n");
    return 2;
}
