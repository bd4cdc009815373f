/* Capsa's sandbox probe, run inside `capsa run` (static: it needs nothing from the bundle).
 * Checks one row each: no capabilities, no_new_privs, seccomp; each syscall the policy refuses
 * gets its errno, with arguments chosen so that an allowed call would fail differently; what
 * apps need still works; host files, processes and network are out of reach; Landlock holds.
 * Prints `NAME expected=X got=Y ok|FAIL` (X may list alternatives: EACCES|EPERM); exits 0 only
 * if every row is ok. Arguments, KEY=VALUE, say what to expect:
 *   uid=N gid=N     the caller's ids on the host (required)
 *   hostpid=N       a host process that must be invisible
 *   port=N          a TCP port listening on the host's 127.0.0.1
 *   abstract=NAME   a host abstract unix socket
 *   net=IF,IF...    network is granted and these are the host's interfaces (default: only lo)
 *   route=RESULT    with net=: the host's result for a UDP connect to 1.1.1.1:53 (success)
 *   absent=PATH     a host path that must not exist inside (repeatable)
 * With netgaps=PORT,OTHER the probe prints only the rows for the ways around Landlock's TCP
 * port rules (uid= and gid= are then not needed): PORT is a granted TCP port listening on the
 * host's 127.0.0.1, OTHER one not granted. Without net= the sandbox has `network=tcp:PORT` and
 * seccomp must refuse non-TCP inet sockets (EPROTONOSUPPORT) and TCP Fast Open (EPERM); with
 * net= the network is granted in full and those calls work.
 * With truth=GRANTED,OTHER,FREE the probe prints only the rows that check `capsa run --report`'s
 * claims (uid= and gid= are then not needed): GRANTED and OTHER are TCP ports listening on the
 * host's 127.0.0.1, FREE a port free there; with them
 *   mode=M          the network: loopback (its own), tcp (network=tcp:GRANTED) or host
 *   abi=N           the Landlock ABI the sandbox uses (CAPSA_LANDLOCK_ABI; the kernel's if lower)
 *   udp=PORT        a UDP socket on the host's 127.0.0.1
 *   abstract=NAME   a host abstract unix socket
 *   rw=PATH ro=PATH a granted host directory, writable or read-only (repeatable)
 * Last, it listens on a TCP socket it never bound, prints `autobind-port=N`, waits for a byte
 * on stdin (or its end), and says whether a connection to that port came in. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

static int failures;

/* Prints one row; ok when `got` is one of the '|'-separated `expected` values. */
static void row(const char *name, const char *expected, const char *got) {
    int ok = 0;
    size_t n = strlen(got);
    for (const char *p = expected; p && !ok; p = strchr(p, '|') ? strchr(p, '|') + 1 : NULL)
        ok = strncmp(p, got, n) == 0 && (p[n] == '|' || p[n] == '\0');
    printf("%s expected=%s got=%s %s\n", name, expected, got, ok ? "ok" : "FAIL");
    failures += !ok;
}

/* "success" for a non-negative result, else the errno's name. */
static const char *result(long r) {
    return r >= 0 ? "success" : strerrorname_np(errno);
}

/* The value of the first KEY=VALUE argument for `key`, or NULL. */
static const char *arg(int argc, char **argv, const char *key) {
    size_t n = strlen(key);
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], key, n) == 0 && argv[i][n] == '=')
            return argv[i] + n + 1;
    return NULL;
}

/* A field of /proc/self/status, e.g. "CapEff". */
static void status_row(const char *field, const char *expected) {
    char line[256], got[64] = "missing";
    size_t n = strlen(field);
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':')
            sscanf(line + n + 1, "%63s", got);
    if (f)
        fclose(f);
    row(field, expected, got);
}

/* A small file's words, comma-separated (so "0 0 1\n" reads 0,0,1). */
static void file_row(const char *name, const char *path, const char *expected) {
    char buf[256] = "", got[256] = "";
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, buf, sizeof buf - 1) < 0)
        snprintf(got, sizeof got, "%s", strerrorname_np(errno));
    if (fd >= 0 && close(fd) == 0)
        for (char *w = strtok(buf, " \t\n"); w; w = strtok(NULL, " \t\n"))
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", got[0] ? "," : "", w);
    row(name, expected, got);
}

struct sys { const char *name; long nr, a0, a1, a2, a3, a4, a5; const char *expected; };

/* Syscalls and expected results. Comments: what a call the filter let through would return;
 * "EPERM" there means the kernel checks a capability first (the row then guards the dropped
 * capabilities). Not called: vhangup, which would hang up the terminal if ever allowed. */
static const struct sys syscalls[] = {
    {"unshare(CLONE_NEWUSER)", SYS_unshare, CLONE_NEWUSER, 0, 0, 0, 0, 0, "EPERM"}, /* success */
    {"clone(CLONE_NEWNS)", SYS_clone, CLONE_NEWNS | CLONE_THREAD, 0, 0, 0, 0, 0, "EPERM"}, /* EINVAL */
    {"clone(CLONE_NEWCGROUP)", SYS_clone, CLONE_NEWCGROUP | CLONE_THREAD, 0, 0, 0, 0, 0, "EPERM"},
    {"clone(CLONE_NEWUTS)", SYS_clone, CLONE_NEWUTS | CLONE_THREAD, 0, 0, 0, 0, 0, "EPERM"},
    {"clone(CLONE_NEWIPC)", SYS_clone, CLONE_NEWIPC | CLONE_THREAD, 0, 0, 0, 0, 0, "EPERM"},
    {"clone(CLONE_NEWUSER)", SYS_clone, CLONE_NEWUSER | CLONE_THREAD, 0, 0, 0, 0, 0, "EPERM"},
    {"clone(CLONE_NEWPID)", SYS_clone, CLONE_NEWPID | CLONE_THREAD, 0, 0, 0, 0, 0, "EPERM"},
    {"clone(CLONE_NEWNET)", SYS_clone, CLONE_NEWNET | CLONE_THREAD, 0, 0, 0, 0, 0, "EPERM"},
    {"setns", SYS_setns, -1, 0, 0, 0, 0, 0, "EPERM"},                   /* EBADF */
    {"mount", SYS_mount, 0, 0, 0, 0, 0, 0, "EPERM"},                    /* EFAULT */
    {"umount2", SYS_umount2, (long)"/", -1, 0, 0, 0, 0, "EPERM"},       /* EINVAL */
    {"pivot_root", SYS_pivot_root, 0, 0, 0, 0, 0, 0, "EPERM"},          /* EPERM (no CAP_SYS_ADMIN) */
    {"chroot", SYS_chroot, 0, 0, 0, 0, 0, 0, "EPERM"},                  /* EFAULT */
    {"add_key", SYS_add_key, 0, 0, 0, 0, 0, 0, "EPERM"},                /* EFAULT */
    {"keyctl", SYS_keyctl, -1, 0, 0, 0, 0, 0, "EPERM"},                 /* EOPNOTSUPP */
    {"request_key", SYS_request_key, 0, 0, 0, 0, 0, 0, "EPERM"},        /* EFAULT */
    {"bpf", SYS_bpf, -1, 0, 0, 0, 0, 0, "EPERM"},                       /* EINVAL or EPERM */
    {"perf_event_open", SYS_perf_event_open, 0, 0, -1, -1, -1, 0, "EPERM"}, /* EINVAL */
    {"userfaultfd", SYS_userfaultfd, 1 | 2, 0, 0, 0, 0, 0, "EPERM"},    /* EINVAL */
    {"lookup_dcookie", SYS_lookup_dcookie, 0, 0, 0, 0, 0, 0, "EPERM"},  /* ENOSYS */
    {"ptrace", SYS_ptrace, PTRACE_PEEKDATA, -1, 0, 0, 0, 0, "EPERM"},   /* ESRCH */
    {"process_vm_readv", SYS_process_vm_readv, 0, 0, 0, 0, 0, 1, "EPERM"},   /* EINVAL */
    {"process_vm_writev", SYS_process_vm_writev, 0, 0, 0, 0, 0, 1, "EPERM"}, /* EINVAL */
    {"pidfd_getfd", SYS_pidfd_getfd, -1, 0, 0, 0, 0, 0, "EPERM"},       /* EBADF */
    {"acct", SYS_acct, 1, 0, 0, 0, 0, 0, "EPERM"},                      /* EPERM (no CAP_SYS_PACCT) */
    {"quotactl", SYS_quotactl, 0xff, 0, 0, 0, 0, 0, "EPERM"},           /* EINVAL */
    {"quotactl_fd", SYS_quotactl_fd, -1, 0xff, 0, 0, 0, 0, "EPERM"},    /* EINVAL */
    {"syslog", SYS_syslog, 10, 0, 0, 0, 0, 0, "EPERM"},                 /* success or EPERM */
    {"kexec_load", SYS_kexec_load, 0, 0, 0, -1, 0, 0, "EPERM"},         /* EPERM (no CAP_SYS_BOOT) */
    {"kexec_file_load", SYS_kexec_file_load, -1, -1, 0, 0, -1, 0, "EPERM"},
    {"init_module", SYS_init_module, 0, 0, 0, 0, 0, 0, "EPERM"},        /* EPERM (no CAP_SYS_MODULE) */
    {"finit_module", SYS_finit_module, -1, 0, -1, 0, 0, 0, "EPERM"},
    {"delete_module", SYS_delete_module, 0, 0, 0, 0, 0, 0, "EPERM"},
    {"reboot", SYS_reboot, 0, 0, 0, 0, 0, 0, "EPERM"},                  /* EPERM, then bad magic */
    {"swapon", SYS_swapon, 0, 0, 0, 0, 0, 0, "EPERM"},
    {"swapoff", SYS_swapoff, 0, 0, 0, 0, 0, 0, "EPERM"},
    {"settimeofday", SYS_settimeofday, 0, 0, 0, 0, 0, 0, "EPERM"},
    {"clock_settime", SYS_clock_settime, 0x7fffffff, 0, 0, 0, 0, 0, "EPERM"}, /* EINVAL */
    {"sethostname", SYS_sethostname, 0, -1, 0, 0, 0, 0, "EPERM"},
    {"setdomainname", SYS_setdomainname, 0, -1, 0, 0, 0, 0, "EPERM"},
    {"fanotify_init", SYS_fanotify_init, 0, 0, 0, 0, 0, 0, "EPERM"},    /* success or EPERM */
    {"open_by_handle_at", SYS_open_by_handle_at, -1, 0, 0, 0, 0, 0, "EPERM"},
    {"mbind", SYS_mbind, 0, 0, 0xffff, 0, 0, 0, "EPERM"},               /* EINVAL */
    {"set_mempolicy", SYS_set_mempolicy, 0xffff, 0, 0, 0, 0, 0, "EPERM"},
    {"get_mempolicy", SYS_get_mempolicy, 0, 0, 0, 0, -1, 0, "EPERM"},
    {"migrate_pages", SYS_migrate_pages, 0x7fffffff, 0, 0, 0, 0, 0, "EPERM"},
    {"move_pages", SYS_move_pages, 0, 0, 0, 0, 0, -1, "EPERM"},
    {"set_mempolicy_home_node", SYS_set_mempolicy_home_node, 0, 0, 0, 1, 0, 0, "EPERM"},
    {"personality(READ_IMPLIES_EXEC)", SYS_personality, READ_IMPLIES_EXEC, 0, 0, 0, 0, 0, "EPERM"},
    {"ioctl(TIOCSTI)", SYS_ioctl, 0, TIOCSTI, 0, 0, 0, 0, "EPERM"},     /* ENOTTY, EFAULT or EIO */
    {"ioctl(TIOCSTI|1<<32)", SYS_ioctl, 0, 0xffffffff00000000 | TIOCSTI, 0, 0, 0, 0, "EPERM"},
    {"ioctl(TIOCLINUX)", SYS_ioctl, 0, TIOCLINUX, 0, 0, 0, 0, "EPERM"},
#ifdef __x86_64__
    {"modify_ldt", SYS_modify_ldt, 99, 0, 0, 0, 0, 0, "EPERM"},         /* ENOSYS */
    {"iopl", SYS_iopl, 4, 0, 0, 0, 0, 0, "EPERM"},                      /* EINVAL */
    {"ioperm", SYS_ioperm, 0, 0, 1, 0, 0, 0, "EPERM"},                  /* EINVAL */
    {"uselib", SYS_uselib, 0, 0, 0, 0, 0, 0, "EPERM"},                  /* ENOSYS or EFAULT */
    {"ustat", SYS_ustat, 0, 0, 0, 0, 0, 0, "EPERM"},                    /* EINVAL */
    {"sysfs", SYS_sysfs, 99, 0, 0, 0, 0, 0, "EPERM"},                   /* EINVAL */
    /* ENOSYS for the x32 ABI (the getpid of x32 would succeed) and unknown numbers. */
    {"x32-getpid", 0x40000000 | SYS_getpid, 0, 0, 0, 0, 0, 0, "ENOSYS"},
#endif
    {"syscall-1000", 1000, 0, 0, 0, 0, 0, 0, "ENOSYS"},
    /* ENOSYS where userspace falls back; allowed calls would give EINVAL, EBADF or EPERM. */
    {"clone3", SYS_clone3, 0, 0, 0, 0, 0, 0, "ENOSYS"},
    {"open_tree", SYS_open_tree, -1, 0, -1, 0, 0, 0, "ENOSYS"},
    {"open_tree_attr", 467, -1, 0, -1, 0, 0, 0, "ENOSYS"},
    {"move_mount", SYS_move_mount, -1, 0, -1, 0, -1, 0, "ENOSYS"},
    {"fsopen", SYS_fsopen, 0, -1, 0, 0, 0, 0, "ENOSYS"},
    {"fsconfig", SYS_fsconfig, -1, -1, 0, 0, 0, 0, "ENOSYS"},
    {"fsmount", SYS_fsmount, -1, -1, 0, 0, 0, 0, "ENOSYS"},
    {"fspick", SYS_fspick, -1, 0, -1, 0, 0, 0, "ENOSYS"},
    {"mount_setattr", SYS_mount_setattr, -1, 0, -1, 0, 0, 0, "ENOSYS"},
    {"io_uring_setup", SYS_io_uring_setup, 0, 0, 0, 0, 0, 0, "ENOSYS"},
    {"io_uring_enter", SYS_io_uring_enter, -1, 0, 0, 0, 0, 0, "ENOSYS"},
    {"io_uring_register", SYS_io_uring_register, -1, 0, 0, 0, 0, 0, "ENOSYS"},
    /* Socket families outside unix, inet, inet6 and netlink. */
    {"socket(AF_PACKET)", SYS_socket, AF_PACKET, SOCK_RAW, 0, 0, 0, 0, "EAFNOSUPPORT"}, /* EPERM */
    {"socket(AF_ALG)", SYS_socket, AF_ALG, SOCK_SEQPACKET, 0, 0, 0, 0, "EAFNOSUPPORT"}, /* success */
    {"socket(AF_KEY)", SYS_socket, AF_KEY, SOCK_RAW, 2, 0, 0, 0, "EAFNOSUPPORT"},
    {"socket(AF_VSOCK)", SYS_socket, AF_VSOCK, SOCK_STREAM, 0, 0, 0, 0, "EAFNOSUPPORT"},
    /* Allowed: what apps need. */
    {"getpid", SYS_getpid, 0, 0, 0, 0, 0, 0, "success"},
    {"socket(AF_UNIX)", SYS_socket, AF_UNIX, SOCK_STREAM, 0, 0, 0, 0, "success"},
    {"socket(AF_INET)", SYS_socket, AF_INET, SOCK_DGRAM, 0, 0, 0, 0, "success"},
    {"socket(AF_NETLINK)", SYS_socket, AF_NETLINK, SOCK_RAW, 0, 0, 0, 0, "success"},
    {"personality(query)", SYS_personality, 0xffffffff, 0, 0, 0, 0, 0, "success"},
    {"ioctl(TIOCGWINSZ)", SYS_ioctl, 0, TIOCGWINSZ, (long)&(struct winsize){0}, 0, 0, 0, "success|ENOTTY"},
    {"memfd_create", SYS_memfd_create, (long)"probe", MFD_CLOEXEC, 0, 0, 0, 0, "success"},
};

static void *thread_main(void *ran) {
    *(int *)ran = 1;
    return NULL;
}

#ifdef __x86_64__
/* getpid through the i386 ABI: seccomp must kill the process for the foreign architecture. */
static void int80_getpid(void) {
    long nr = 20;
    __asm__ volatile("int $0x80" : "+a"(nr) : : "memory");
}
#endif

/* How a child running `fn` ended: "exit-N" or the signal's name. */
static const char *child_end(void (*fn)(void)) {
    static char buf[32];
    int st;
    pid_t pid = fork();
    if (pid == 0) {
        if (fn)
            fn();
        _exit(7);
    }
    if (pid < 0 || waitpid(pid, &st, 0) < 0)
        return strerrorname_np(errno);
    if (WIFSIGNALED(st))
        snprintf(buf, sizeof buf, "SIG%s", sigabbrev_np(WTERMSIG(st)));
    else
        snprintf(buf, sizeof buf, "exit-%d", WEXITSTATUS(st));
    return buf;
}

/* Opens `path` with `flags` and writes `data`; a file it created is removed again. */
static const char *write_result(const char *path, int flags, const char *data) {
    int fd = open(path, flags | O_WRONLY | O_CLOEXEC, 0644);
    const char *res = result(fd < 0 ? -1 : write(fd, data, strlen(data)));
    if (fd >= 0 && close(fd) == 0 && (flags & O_CREAT))
        unlink(path);
    return res;
}

static const char *connect_result(int type, const void *addr, socklen_t len) {
    int s = socket(((const struct sockaddr *)addr)->sa_family, type | SOCK_CLOEXEC, 0);
    const char *res = result(s < 0 ? -1 : connect(s, addr, len));
    if (s >= 0)
        close(s);
    return res;
}

/* The numeric entries of a /proc directory, comma-separated, without this reader's own fd. */
static void list_numbers(const char *dir, char *out, size_t size) {
    DIR *d = opendir(dir);
    out[0] = '\0';
    for (struct dirent *e; d && (e = readdir(d));)
        if (e->d_name[0] >= '0' && e->d_name[0] <= '9' && atoi(e->d_name) != dirfd(d))
            snprintf(out + strlen(out), size - strlen(out), "%s%s", out[0] ? "," : "", e->d_name);
    if (d)
        closedir(d);
}

static const char *mount_flags(const char *path) {
    static char buf[32];
    struct statvfs v;
    if (statvfs(path, &v) < 0)
        return strerrorname_np(errno);
    snprintf(buf, sizeof buf, "%s,%s", v.f_flag & ST_NOSUID ? "nosuid" : "suid",
             v.f_flag & ST_NODEV ? "nodev" : "dev");
    return buf;
}

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif

/* Whether the first word of a /proc/sys file is `want`. */
static int sysctl_is(const char *path, const char *want) {
    char buf[64] = "";
    FILE *f = fopen(path, "r");
    int is = f && fscanf(f, "%63s", buf) == 1 && strcmp(buf, want) == 0;
    if (f)
        fclose(f);
    return is;
}

static const char *socket_result(int family, int type, int protocol) {
    int s = socket(family, type | SOCK_CLOEXEC, protocol);
    if (s >= 0)
        close(s);
    return result(s);
}

/* A TCP Fast Open send of one byte to `to` over a new TCP socket, with sendto, sendmsg or
 * sendmmsg (`how` 0, 1 or 2): each connects without a connect() call. */
static const char *fastopen_result(int how, const struct sockaddr_in *to) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct iovec iov = {.iov_base = "x", .iov_len = 1};
    struct mmsghdr m = {.msg_hdr = {.msg_name = (void *)to, .msg_namelen = sizeof *to,
                                    .msg_iov = &iov, .msg_iovlen = 1}};
    long r = s < 0 ? -1
             : how == 0 ? sendto(s, "x", 1, MSG_FASTOPEN, (const struct sockaddr *)to, sizeof *to)
             : how == 1 ? sendmsg(s, &m.msg_hdr, MSG_FASTOPEN)
                        : sendmmsg(s, &m, 1, MSG_FASTOPEN);
    const char *res = result(r);
    if (s >= 0)
        close(s);
    return res;
}

/* What an MPTCP socket gives when nothing filters it (the sysctls of this network namespace). */
static const char *unfiltered_mptcp(void) {
    return sysctl_is("/proc/sys/net/mptcp/enabled", "1") ? "success"
           : access("/proc/sys/net/mptcp", F_OK) == 0    ? "ENOPROTOOPT"
                                                         : "EPROTONOSUPPORT";
}

/* Whether this network namespace lets clients use TCP Fast Open. */
static int fastopen_client(void) {
    return sysctl_is("/proc/sys/net/ipv4/tcp_fastopen", "1") ||
           sysctl_is("/proc/sys/net/ipv4/tcp_fastopen", "3");
}

/* The netgaps= rows (see the top): `granted` when the network is granted in full. */
static int netgap_rows(const char *ports, int granted, long abi) {
    int port = atoi(ports), other = strchr(ports, ',') ? atoi(strchr(ports, ',') + 1) : 0;
    if (!port || !other) {
        fprintf(stderr, "usage: netgaps=PORT,OTHERPORT\n");
        return 2;
    }
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port)};
    struct sockaddr_in away = {.sin_family = AF_INET, .sin_port = htons(other)};
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &away.sin_addr);
    /* What the kernel gives when nothing filters: MPTCP and TFO depend on sysctls, SCTP on
     * the kernel's build. */
    const char *mptcp = unfiltered_mptcp();
    int tfo = fastopen_client();
    const char *no = "EPROTONOSUPPORT"; /* seccomp's answer under network=tcp */
    const char *dgram = granted ? "success" : no;
    const char *fastopen = !granted ? "EPERM" : tfo ? "success" : "EOPNOTSUPP";
    row("socket(AF_INET,SOCK_STREAM,IPPROTO_MPTCP)", granted ? mptcp : no,
        socket_result(AF_INET, SOCK_STREAM, IPPROTO_MPTCP));
    row("socket(AF_INET6,SOCK_STREAM,IPPROTO_MPTCP)", granted ? mptcp : no,
        socket_result(AF_INET6, SOCK_STREAM, IPPROTO_MPTCP));
    row("socket(AF_INET,SOCK_STREAM,IPPROTO_SCTP)", granted ? "success|EPROTONOSUPPORT" : no,
        socket_result(AF_INET, SOCK_STREAM, IPPROTO_SCTP));
    row("socket(AF_INET,SOCK_SEQPACKET,IPPROTO_SCTP)",
        granted ? "success|ESOCKTNOSUPPORT|EPROTONOSUPPORT" : no,
        socket_result(AF_INET, SOCK_SEQPACKET, IPPROTO_SCTP));
    row("socket(AF_INET,SOCK_DGRAM,0)", dgram, socket_result(AF_INET, SOCK_DGRAM, 0));
    row("socket(AF_INET6,SOCK_DGRAM|SOCK_NONBLOCK,0)", dgram,
        socket_result(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK, 0));
    row("socket(AF_INET,SOCK_RAW,IPPROTO_ICMP)", granted ? "EPERM" : no,
        socket_result(AF_INET, SOCK_RAW, IPPROTO_ICMP)); /* no CAP_NET_RAW */
    row("socket(AF_INET,SOCK_STREAM,IPPROTO_TCP)", "success",
        socket_result(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, IPPROTO_TCP));
    row("tcp-connect:port", "success", connect_result(SOCK_STREAM, &to, sizeof to));
    row("tcp-connect:other-port", granted || abi < 4 ? "success" : "EACCES",
        connect_result(SOCK_STREAM, &away, sizeof away));
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    row("setsockopt(TCP_FASTOPEN_CONNECT)", fastopen,
        result(s < 0 ? -1 : setsockopt(s, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, &one, sizeof one)));
    if (s >= 0)
        close(s);
    row("sendto(MSG_FASTOPEN):other-port", fastopen, fastopen_result(0, &away));
    row("sendmsg(MSG_FASTOPEN):other-port", fastopen, fastopen_result(1, &away));
    row("sendmmsg(MSG_FASTOPEN):other-port", fastopen, fastopen_result(2, &away));
    return failures ? 1 : 0;
}

/* 127.0.0.1:port. */
static struct sockaddr_in loopback_addr(int port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    return a;
}

/* A TCP bind of a new socket to 127.0.0.1:port (free again afterwards; SO_REUSEADDR, as
 * servers set it, so that an earlier run's connection in TIME_WAIT does not hold it). */
static const char *bind_result(int port) {
    struct sockaddr_in a = loopback_addr(port);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (s >= 0)
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    const char *res = result(s < 0 ? -1 : bind(s, (const struct sockaddr *)&a, sizeof a));
    if (s >= 0)
        close(s);
    return res;
}

/* A TCP server on 127.0.0.1:port that connects to itself: "success", or the step that failed
 * and its errno ("bind-EACCES"). */
static const char *loopback_server(int port) {
    static char buf[64];
    struct sockaddr_in a = loopback_addr(port);
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), c = -1, one = 1;
    const char *step = "socket";
    long r = l;
    if (r >= 0) {
        step = "bind";
        setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        r = bind(l, (const struct sockaddr *)&a, sizeof a);
    }
    if (r >= 0) {
        step = "listen";
        r = listen(l, 1);
    }
    if (r >= 0) {
        step = "connect";
        c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        r = c < 0 ? -1 : connect(c, (const struct sockaddr *)&a, sizeof a);
    }
    if (r >= 0) {
        step = "accept";
        r = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    }
    snprintf(buf, sizeof buf, "%s-%s", step, r < 0 ? strerrorname_np(errno) : "");
    if (r >= 0)
        close((int)r);
    if (c >= 0)
        close(c);
    if (l >= 0)
        close(l);
    return r >= 0 ? "success" : buf;
}

/* A UDP datagram to 127.0.0.1:port. */
static const char *udp_result(int port) {
    struct sockaddr_in a = loopback_addr(port);
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    const char *res =
        result(s < 0 ? -1 : sendto(s, "x", 1, 0, (const struct sockaddr *)&a, sizeof a));
    if (s >= 0)
        close(s);
    return res;
}

/* The truth= rows (see the top). */
static int truth_rows(int argc, char **argv, const char *ports, long kernel_abi) {
    const char *mode = arg(argc, argv, "mode"), *abstract = arg(argc, argv, "abstract");
    const char *cap = arg(argc, argv, "abi"), *udp = arg(argc, argv, "udp");
    int granted = 0, other = 0, free_port = 0;
    if (sscanf(ports, "%d,%d,%d", &granted, &other, &free_port) != 3 || !mode || !cap ||
        !udp || !abstract ||
        (strcmp(mode, "loopback") && strcmp(mode, "tcp") && strcmp(mode, "host"))) {
        fprintf(stderr, "usage: truth=GRANTED,OTHER,FREE mode=loopback|tcp|host abi=N udp=PORT "
                        "abstract=NAME [rw=PATH] [ro=PATH]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    long abi = atol(cap) < kernel_abi ? atol(cap) : kernel_abi;
    int lo = strcmp(mode, "loopback") == 0, ports_only = strcmp(mode, "tcp") == 0;
    int tcp_rules = ports_only && abi >= 4, tfo = fastopen_client();
    const char *no = "EPROTONOSUPPORT"; /* seccomp's answer under network=tcp */
    struct sockaddr_in to = loopback_addr(granted), away = loopback_addr(other);
    struct sockaddr_in dns = loopback_addr(53);

    /* TCP: connect by port, bind, a server on 127.0.0.1. Own loopback: nothing listens. */
    row("tcp-connect:granted", lo ? "ECONNREFUSED" : "success",
        connect_result(SOCK_STREAM, &to, sizeof to));
    row("tcp-connect:other", lo ? "ECONNREFUSED" : tcp_rules ? "EACCES" : "success",
        connect_result(SOCK_STREAM, &away, sizeof away));
    row("tcp-connect:53", "success|ECONNREFUSED", connect_result(SOCK_STREAM, &dns, sizeof dns));
    row("tcp-bind:chosen-port", tcp_rules ? "EACCES" : "success", bind_result(free_port));
    row("loopback-server:127.0.0.1", tcp_rules ? "bind-EACCES" : "success",
        loopback_server(free_port));

    /* What seccomp refuses under port grants. */
    row("udp-sendto:host-port", ports_only ? no : "success", udp_result(atoi(udp)));
    row("socket(AF_INET,SOCK_STREAM,IPPROTO_MPTCP)", ports_only ? no : unfiltered_mptcp(),
        socket_result(AF_INET, SOCK_STREAM, IPPROTO_MPTCP));
    row("socket(AF_INET,SOCK_STREAM,IPPROTO_SCTP)", ports_only ? no : "success|EPROTONOSUPPORT",
        socket_result(AF_INET, SOCK_STREAM, IPPROTO_SCTP));
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    row("setsockopt(TCP_FASTOPEN_CONNECT)", ports_only ? "EPERM" : tfo ? "success" : "EOPNOTSUPP",
        result(s < 0 ? -1 : setsockopt(s, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, &one, sizeof one)));
    if (s >= 0)
        close(s);
    row("sendto(MSG_FASTOPEN):other", ports_only ? "EPERM" : !tfo ? "EOPNOTSUPP"
                                      : lo                ? "ECONNREFUSED"
                                                          : "success",
        fastopen_result(0, &away));

    /* Landlock's scopes and the rights of newer ABIs. */
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    snprintf(un.sun_path + 1, sizeof un.sun_path - 1, "%s", abstract);
    socklen_t len = offsetof(struct sockaddr_un, sun_path) + 1 + strlen(abstract);
    row("connect:host-abstract-socket", lo ? "ECONNREFUSED" : abi >= 6 ? "EPERM" : "success",
        connect_result(SOCK_STREAM, &un, len));
    row("kill(1,0)", abi >= 6 ? "EPERM" : "success", result(kill(1, 0))); /* outside the domain */
    row("truncate:/proc/self/comm", abi >= 3 ? "EACCES" : "success", /* read-only for Landlock */
        result(truncate("/proc/self/comm", 0)));

    /* Granted host directories. */
    char path[4096], name[4200];
    for (int i = 1; i < argc; i++) {
        int rw = strncmp(argv[i], "rw=", 3) == 0;
        if (!rw && strncmp(argv[i], "ro=", 3) != 0)
            continue;
        snprintf(path, sizeof path, "%s/capsa-probe-file", argv[i] + 3);
        snprintf(name, sizeof name, "create:%s", argv[i] + 3);
        row(name, rw ? "success" : "EROFS|EACCES", write_result(path, O_CREAT | O_EXCL, "x"));
    }

    /* listen() on a socket never bound: the kernel binds an ephemeral port on every address.
     * The port is printed; whoever reads it connects and then writes a byte to our stdin (or
     * closes it); then the connection is accepted or not. */
    int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in bound = {0};
    socklen_t blen = sizeof bound;
    row("tcp-listen:never-bound", "success", result(l < 0 ? -1 : listen(l, 1)));
    getsockname(l, (struct sockaddr *)&bound, &blen);
    printf("autobind-port=%d\n", ntohs(bound.sin_port));
    char b;
    if (read(0, &b, 1) < 0)
        perror("read stdin");
    int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    row("tcp-accept:host-client", lo ? "EAGAIN" : "success", result(c));
    if (c >= 0)
        close(c);
    if (l >= 0)
        close(l);
    return failures ? 1 : 0;
}

int main(int argc, char **argv) {
    const char *uid = arg(argc, argv, "uid"), *gid = arg(argc, argv, "gid");
    const char *net = arg(argc, argv, "net"), *route = arg(argc, argv, "route");
    const char *hostpid = arg(argc, argv, "hostpid"), *port = arg(argc, argv, "port");
    const char *abstract = arg(argc, argv, "abstract");
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, 1 /* ..._VERSION */);
    char got[4096], want[256];
    struct stat st;
    pthread_t thread;
    if (arg(argc, argv, "netgaps"))
        return netgap_rows(arg(argc, argv, "netgaps"), net != NULL, abi);
    if (arg(argc, argv, "truth"))
        return truth_rows(argc, argv, arg(argc, argv, "truth"), abi);
    if (!uid || !gid) {
        fprintf(stderr, "usage: %s uid=N gid=N [KEY=VALUE...]\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* Descriptors and processes first, before the probe opens or starts any. */
    list_numbers("/proc/self/fd", got, sizeof got);
    row("fds", "0,1,2", got);
    list_numbers("/proc", got, sizeof got);
    snprintf(want, sizeof want, "1,%d", getpid());
    row("proc-pids", want, got);

    /* Privileges. */
    for (const char **c = (const char *[]){"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", NULL};
         *c; c++)
        status_row(*c, "0000000000000000");
    status_row("NoNewPrivs", "1");
    status_row("Seccomp", "2");
    snprintf(got, sizeof got, "%u", getuid());
    row("getuid", uid, got);
    snprintf(got, sizeof got, "%u", getgid());
    row("getgid", gid, got);
    snprintf(want, sizeof want, "%s,%s,1", uid, uid);
    file_row("uid_map", "/proc/self/uid_map", want);
    snprintf(want, sizeof want, "%s,%s,1", gid, gid);
    file_row("gid_map", "/proc/self/gid_map", want);
    file_row("setgroups", "/proc/self/setgroups", "deny");
    row("setgroups(0)", "EPERM", result(syscall(SYS_setgroups, 0, NULL)));
    row("setuid(0)", strcmp(uid, "0") ? "EINVAL|EPERM" : "success", result(syscall(SYS_setuid, 0)));
    snprintf(want, sizeof want, ":x:%s:%s:", uid, gid);
    FILE *pw = fopen("/etc/passwd", "r");
    const char *entry = pw ? "missing" : strerrorname_np(errno);
    while (pw && fgets(got, sizeof got, pw))
        entry = strstr(got, want) ? "found" : entry;
    if (pw)
        fclose(pw);
    row("passwd-entry", "found", entry);

    /* The seccomp policy. */
    for (size_t i = 0; i < sizeof syscalls / sizeof *syscalls; i++) {
        const struct sys *s = &syscalls[i];
        row(s->name, s->expected, result(syscall(s->nr, s->a0, s->a1, s->a2, s->a3, s->a4, s->a5)));
    }
    row("fork", "exit-7", child_end(NULL));
    int ran = 0, e = pthread_create(&thread, NULL, thread_main, &ran); /* clone3 → clone */
    if (e == 0)
        pthread_join(thread, NULL);
    row("pthread_create", "success", e ? strerrorname_np(e) : ran ? "success" : "not-run");
#ifdef __x86_64__
    row("int0x80-getpid", "SIGSYS|SIGSEGV", child_end(int80_getpid));
#endif

    /* Other processes: the host's are invisible, pid 1 cannot be inspected or attached to. */
    if (hostpid)
        row("kill(hostpid,0)", "ESRCH", result(kill(atoi(hostpid), 0)));
    row("ptrace(ATTACH,1)", "EPERM", result(syscall(SYS_ptrace, PTRACE_ATTACH, 1, 0, 0)));
    row("open(/proc/1/environ)", "EACCES", result(open("/proc/1/environ", O_RDONLY | O_CLOEXEC)));
    row("open(/proc/1/exe,O_PATH)", "EACCES", result(open("/proc/1/exe", O_PATH | O_CLOEXEC)));

    /* The filesystem. */
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "absent=", 7) != 0)
            continue;
        snprintf(want, sizeof want, "absent:%s", argv[i] + 7);
        row(want, "ENOENT|ENOTDIR",
            lstat(argv[i] + 7, &st) < 0 ? strerrorname_np(errno) : "exists");
    }
    row("getcwd", "reachable",
        getcwd(got, sizeof got) && got[0] == '/' ? "reachable" : "unreachable");
    if (stat("/dev/null", &st) < 0)
        snprintf(got, sizeof got, "%s", strerrorname_np(errno));
    else
        snprintf(got, sizeof got, S_ISCHR(st.st_mode) ? "char-%u:%u" : "not-char",
                 major(st.st_rdev), minor(st.st_rdev));
    row("/dev/null", "char-1:3", got);
    struct statfs fs;
    row("/proc-fstype", "procfs",
        statfs("/proc", &fs) == 0 && fs.f_type == 0x9fa0 /* PROC_SUPER_MAGIC */ ? "procfs" : "other");
    row("mount-flags:/", "nosuid,nodev", mount_flags("/"));
    row("mount-flags:/tmp", "nosuid,nodev", mount_flags("/tmp"));
    row("mount-flags:$HOME", "nosuid,nodev", mount_flags(getenv("HOME") ? getenv("HOME") : "/"));
    row("create:/usr/capsa-probe-file", "success", /* the writable root */
        write_result("/usr/capsa-probe-file", O_CREAT | O_EXCL, "x"));
    gethostname(want, sizeof want); /* written back unchanged: harmless even if allowed */
    row("write:/proc/sys/kernel/hostname", "EACCES|EPERM|EROFS",
        write_result("/proc/sys/kernel/hostname", 0, want));
    /* File capabilities (CVE-2021-3493): a v2 security.capability granting everything. */
    const unsigned caps[5] = {0x02000001, 0xffffffff, 0, 0xffffffff, 0};
    row("setxattr(security.capability)", "EPERM",
        result(setxattr("/proc/self/exe", "security.capability", caps, sizeof caps, 0)));
    if (abi > 0) {
        /* Landlock: no new entries in / and no writes under /proc, which the mounts allow. */
        row("landlock:create:/capsa-probe-file", "EACCES",
            write_result("/capsa-probe-file", O_CREAT | O_EXCL, "x"));
        row("landlock:write:/proc/self/comm", "EACCES", write_result("/proc/self/comm", 0, "probe"));
    } else {
        row("create:/proc/self/capsa-probe-file", "ENOENT|EACCES|EPERM",
            write_result("/proc/self/capsa-probe-file", O_CREAT | O_EXCL, "x"));
    }

    /* The network. */
    FILE *dev = fopen("/proc/net/dev", "r");
    char line[512], name[64];
    got[0] = '\0';
    for (int n = 0; dev && fgets(line, sizeof line, dev); n++)
        if (n >= 2 && sscanf(line, " %63[^:]", name) == 1)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", got[0] ? "," : "", name);
    if (dev)
        fclose(dev);
    row("netdevs", net ? net : "lo", got);
    struct sockaddr_in dns = {.sin_family = AF_INET, .sin_port = htons(53)};
    inet_pton(AF_INET, "1.1.1.1", &dns.sin_addr);
    row("udp-connect:1.1.1.1:53", net ? (route ? route : "success") : "ENETUNREACH",
        connect_result(SOCK_DGRAM, &dns, sizeof dns));
    if (port) {
        struct sockaddr_in lo = {.sin_family = AF_INET, .sin_port = htons(atoi(port))};
        inet_pton(AF_INET, "127.0.0.1", &lo.sin_addr);
        row("tcp-connect:host-port", net ? "success" : "ECONNREFUSED",
            connect_result(SOCK_STREAM, &lo, sizeof lo));
    }
    if (abstract) {
        struct sockaddr_un un = {.sun_family = AF_UNIX};
        snprintf(un.sun_path + 1, sizeof un.sun_path - 1, "%s", abstract);
        socklen_t len = offsetof(struct sockaddr_un, sun_path) + 1 + strlen(abstract);
        row("connect:host-abstract-socket", net ? (abi >= 6 ? "EPERM" : "success") : "ECONNREFUSED",
            connect_result(SOCK_STREAM, &un, len));
    }
    return failures ? 1 : 0;
}
