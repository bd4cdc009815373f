/* bench-spawn: the measuring end of bench/benchlib.py.
 *
 *   bench-spawn FD CMD [ARG...]
 *
 * Forks, execs CMD in the child, reaps it with wait4 and writes one line to file descriptor FD
 * (closed in the child):
 *   "<wall ns> <ru_utime us> <ru_stime us> <ru_maxrss KiB> <wait status>\n"
 * then exits 0. The wall time is CLOCK_MONOTONIC from just before fork to just after wait4.
 *
 * Why not measure from Python directly: a child's ru_maxrss keeps the peak RSS of the memory it
 * had before exec, and a child forked (or vforked) by the Python driver starts with the driver's
 * ~8 MB; this program, statically linked, is a few hundred KiB, so what ru_maxrss reports is
 * the measured command's tree and not the driver. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench-spawn FD CMD [ARG...]\n");
        return 2;
    }
    int fd = atoi(argv[1]);
    if (fd < 3 || fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
        fprintf(stderr, "bench-spawn: bad result descriptor %s\n", argv[1]);
        return 2;
    }
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    pid_t pid = fork();
    if (pid < 0) {
        perror("bench-spawn: fork");
        return 2;
    }
    if (pid == 0) {
        execvp(argv[2], argv + 2);
        fprintf(stderr, "bench-spawn: exec %s: %m\n", argv[2]);
        _exit(127);
    }
    struct rusage ru;
    int status;
    while (wait4(pid, &status, 0, &ru) < 0) {
        if (errno != EINTR) {
            perror("bench-spawn: wait4");
            return 2;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    long long ns = (long long)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
    dprintf(fd, "%lld %lld %lld %ld %d\n", ns,
            (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec,
            (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec, ru.ru_maxrss, status);
    return 0;
}
