/* Recognisable guest workload for Periscope's tests. One static binary, several roles:
 *   workload threads N     main thread + N sleeping threads (a multi-threaded process)
 *   workload rename NAME   renames itself with prctl(PR_SET_NAME) so comm differs from the file name
 *   workload zombie        forks a child that exits at once and never reaps it (a zombie stays)
 *   workload mapfile PATH  maps a file read-only and an anonymous executable page, then sleeps
 *   workload forkthread    names itself thread-forker; a second thread forks a child named thread-child that sleeps
 *                          (the child's real_parent is that thread: /proc's PPid is still the forker's tgid)
 *   workload vmas N        names itself many-vmas and maps N one-page anonymous regions, alternately read-write (touched)
 *                          and read-only, each between PROT_NONE guard pages: 2N VMAs that never merge (scale benchmark)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

static void *sleeper(void *arg) { (void)arg; for (;;) pause(); return NULL; }

static void *forker(void *arg)
{
    (void)arg;
    if (fork() == 0) {
        prctl(PR_SET_NAME, "thread-child", 0, 0, 0);
        for (;;) pause();
    }
    for (;;) pause(); /* stay alive: if this thread exited, the child would be reparented to the main thread */
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "threads") == 0) {
        int n = argc >= 3 ? atoi(argv[2]) : 3;
        for (int i = 0; i < n; i++) { pthread_t t; pthread_create(&t, NULL, sleeper, NULL); }
    } else if (argc >= 3 && strcmp(argv[1], "rename") == 0) {
        prctl(PR_SET_NAME, argv[2], 0, 0, 0);
    } else if (argc >= 2 && strcmp(argv[1], "zombie") == 0) {
        if (fork() == 0) _exit(0);
    } else if (argc >= 3 && strcmp(argv[1], "mapfile") == 0) {
        int fd = open(argv[2], O_RDONLY);
        if (fd >= 0) mmap(NULL, 8192, PROT_READ, MAP_PRIVATE, fd, 4096);
        void *x = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (x != MAP_FAILED) memset(x, 0xc3, 4096);
    } else if (argc >= 2 && strcmp(argv[1], "forkthread") == 0) {
        prctl(PR_SET_NAME, "thread-forker", 0, 0, 0);
        pthread_t t;
        pthread_create(&t, NULL, forker, NULL);
    } else if (argc >= 3 && strcmp(argv[1], "vmas") == 0) {
        prctl(PR_SET_NAME, "many-vmas", 0, 0, 0);
        int n = atoi(argv[2]);
        /* One reserved range, then every page re-mapped on its own with permissions unlike its neighbours'. */
        char *base = mmap(NULL, (size_t)n * 2 * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (base == MAP_FAILED) return 1;
        for (int i = 0; i < n; i++) {
            char *p = base + (size_t)i * 2 * 4096;
            if (mmap(p, 4096, i % 2 ? PROT_READ : PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED) return 1;
            if (i % 2 == 0) p[0] = 1;
        }
    } else {
        fprintf(stderr, "usage: workload threads N | rename NAME | zombie | mapfile PATH | forkthread | vmas N\n");
        return 2;
    }
    for (;;) pause();
}
