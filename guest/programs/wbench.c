/*
 * wbench ITERATIONS: a fixed guest workload for `scripts/bench-watch` (guest slowdown with `periscope watch`
 * attached). Each iteration does a fixed amount of CPU work (a 64-bit xorshift/multiply mix over a 16 KiB buffer)
 * and three system calls (getppid, clock_gettime through the syscall instruction, write of 0 bytes to /dev/null);
 * the elapsed CLOCK_MONOTONIC time of the whole loop is printed as "wbench iterations=N elapsed_ns=T check=X".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/syscall.h>

static uint64_t buffer[2048];

int main(int argc, char **argv)
{
	long iterations = argc > 1 ? atol(argv[1]) : 100000;
	int null = open("/dev/null", O_WRONLY);
	uint64_t x = 0x9e3779b97f4a7c15ULL, check = 0;
	struct timespec start, end, now;

	if (iterations <= 0 || null < 0) {
		fprintf(stderr, "usage: wbench ITERATIONS (> 0); /dev/null must open\n");
		return 2;
	}
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (long i = 0; i < iterations; i++) {
		for (int j = 0; j < 2048; j += 8) {
			x ^= x << 13; x ^= x >> 7; x ^= x << 17;
			buffer[j] += x * 0xff51afd7ed558ccdULL;
		}
		check += buffer[i & 2047];
		check += (uint64_t)syscall(SYS_getppid);
		syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &now);
		if (syscall(SYS_write, null, buffer, 0) < 0) check++;
	}
	clock_gettime(CLOCK_MONOTONIC, &end);
	long long ns = (long long)(end.tv_sec - start.tv_sec) * 1000000000LL + (end.tv_nsec - start.tv_nsec);
	printf("wbench iterations=%ld elapsed_ns=%lld check=%llx\n", iterations, ns, (unsigned long long)check);
	return 0;
}
