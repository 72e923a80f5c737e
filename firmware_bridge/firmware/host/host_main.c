/* The emulated hand: the firmware's controller compiled for a POSIX host, speaking over a pseudo-terminal.
 *
 *   hand_sim [--link PATH] [--watchdog-ms 20..2000] [--status-every 1..60000 ms] [--tick-us 100..100000]
 *
 * Prints "PTY <path>" first, then "STATUS <ms> <state> <faults> <p0> <p1> ..." lines (positions in mrad)
 * every --status-every ms and whenever the state changes.
 *
 * --link PATH makes a symlink to the pty at PATH, so a host can reopen the same path after the "device" is
 * unplugged and plugged back. PATH.lock (flock-ed for the whole run, holding our pid) tells a live link from
 * a stale one: a second hand_sim on a live link refuses; a stale link (a symlink to a pty that no live
 * hand_sim holds) is replaced; anything else at PATH (a file, a folder, another symlink) is refused, never
 * deleted. On exit only our own link (still pointing at our pty) and our lock file are removed.
 *
 * Shutdown: SIGTERM, SIGINT, or the parent process dying (the emulated hand must not outlive the program
 * that started it) all do what the watchdog does: SAFE, ease to the safe pose at the slew limits (at most
 * SHUTDOWN_MAX_MS), print a last STATUS line, remove the link, exit 0. The parent is watched by polling
 * getppid() every tick rather than with Linux's PR_SET_PDEATHSIG, which fires when the *thread* that
 * started us ends (a Python worker thread, say), not the process.
 *
 * Exit status: 0 after a clean shutdown, 2 for a bad argument or a --link we must not take, 1 when the
 * system refuses a pty. Every refusal is one line on stderr starting "hand_sim: ". */
#define _XOPEN_SOURCE 600
#define _DEFAULT_SOURCE
#define _DARWIN_C_SOURCE /* macOS: cfmakeraw, flock */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "../controller.h"
#include "../hal.h"
#include "../protocol.h"

#define EXIT_USAGE 2
#define EXIT_SYSTEM 1
#define SHUTDOWN_MAX_MS 5000u
#define LOCK_SUFFIX ".lock"
#define LOCK_TAG "mode2 hand_sim pid "
#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

static int master_fd = -1;
static int16_t outputs[PROTO_MAX_JOINTS];
static volatile sig_atomic_t stop_requested = 0;
static unsigned long tx_dropped = 0;

uint32_t hal_millis(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint32_t)((unsigned long long)now.tv_sec * 1000ull + (unsigned long long)now.tv_nsec / 1000000ull);
}

void hal_serial_write(const uint8_t *data, size_t length)
{
    while (length > 0) {
        ssize_t n = write(master_fd, data, length);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            tx_dropped++; /* host not reading (EAGAIN) or gone: drop, never stall the control loop */
            return;
        }
        data += n;
        length -= (size_t)n;
    }
}

void hal_set_joint_output(uint8_t joint, int16_t position_mrad)
{
    if (joint < PROTO_MAX_JOINTS) {
        outputs[joint] = position_mrad;
    }
}

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void print_status(const controller *ctrl, uint32_t now)
{
    uint8_t j;
    printf("STATUS %lu %u %u", (unsigned long)now, (unsigned)ctrl->state, (unsigned)ctrl->faults);
    for (j = 0; j < ctrl->n_joints; ++j) {
        printf(" %d", (int)outputs[j]);
    }
    printf("\n");
    fflush(stdout);
}

/* A whole decimal number in [low, high], or refuse: no sign tricks (-1 must not become 4294967295). */
static int parse_ranged(const char *option, const char *text, unsigned long low, unsigned long high,
                        unsigned long *out)
{
    char *end = NULL;
    unsigned long value = 0;
    errno = 0;
    if (text[0] < '0' || text[0] > '9') {
        end = (char *)text;
    } else {
        value = strtoul(text, &end, 10);
    }
    if (end == text || *end != '\0' || errno != 0 || value < low || value > high) {
        fprintf(stderr, "hand_sim: %s must be a whole number from %lu to %lu (got '%s')\n", option, low, high, text);
        return 0;
    }
    *out = value;
    return 1;
}

/* --- the link and its lock ------------------------------------------------------------------------- */

typedef struct {
    const char *path;          /* NULL: no link */
    char lock_path[PATH_MAX];
    int lock_fd;
    char target[PATH_MAX];     /* our pty, which the link points at */
} link_claim;

/* "/dev/pts/" on Linux, "/dev/ttys" on macOS: our own pty's name without its trailing number. */
static size_t pty_prefix_length(const char *pty)
{
    size_t n = strlen(pty);
    while (n > 0 && pty[n - 1] >= '0' && pty[n - 1] <= '9') {
        --n;
    }
    return n;
}

static int is_stale_pty_link(const char *path, const char *our_pty)
{
    char target[PATH_MAX];
    ssize_t n = readlink(path, target, sizeof target - 1);
    size_t prefix = pty_prefix_length(our_pty), k;
    if (n <= 0) {
        return 0;
    }
    target[n] = '\0';
    if ((size_t)n <= prefix || strncmp(target, our_pty, prefix) != 0) {
        return 0;
    }
    for (k = prefix; k < (size_t)n; ++k) {
        if (target[k] < '0' || target[k] > '9') {
            return 0;
        }
    }
    return 1;
}

static const char *kind_of(mode_t mode)
{
    if (S_ISDIR(mode)) return "a folder";
    if (S_ISREG(mode)) return "a regular file";
    if (S_ISLNK(mode)) return "a symlink that is not a hand-sim link";
    if (S_ISFIFO(mode)) return "a named pipe";
    if (S_ISSOCK(mode)) return "a socket";
    return "a device or special file";
}

static void describe_holder(int fd, char *out, size_t capacity)
{
    char text[128];
    ssize_t n = pread(fd, text, sizeof text - 1, 0);
    snprintf(out, capacity, "a live hand-sim");
    if (n > 0) {
        text[n] = '\0';
        text[strcspn(text, "\n")] = '\0';
        if (strncmp(text, LOCK_TAG, strlen(LOCK_TAG)) == 0) {
            snprintf(out, capacity, "a live hand-sim (pid %s)", text + strlen(LOCK_TAG));
        }
    }
}

/* We hold the lock but will not take the link: leave nothing of ours behind. */
static int give_up(link_claim *claim)
{
    unlink(claim->lock_path);
    close(claim->lock_fd);
    claim->lock_fd = -1;
    return 0;
}

/* Takes PATH.lock and makes PATH a symlink to `pty`, or says on stderr why not. */
static int claim_link(link_claim *claim, const char *pty)
{
    struct stat st, lock_st, path_st;
    char folder[PATH_MAX];
    char *slash;
    int attempt;
    if (strlen(claim->path) + strlen(LOCK_SUFFIX) >= sizeof claim->lock_path || strlen(pty) >= sizeof claim->target) {
        fprintf(stderr, "hand_sim: --link %s: the path is too long\n", claim->path);
        return 0;
    }
    if (claim->path[0] == '\0') {
        fprintf(stderr, "hand_sim: --link is empty: give a path for the link, e.g. /tmp/mode2-hand\n");
        return 0;
    }
    strcpy(claim->target, pty);
    strcpy(folder, claim->path);
    slash = strrchr(folder, '/');
    if (slash == folder) {
        folder[1] = '\0';
    } else if (slash != NULL) {
        *slash = '\0';
    } else {
        strcpy(folder, ".");
    }
    if (stat(folder, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "hand_sim: --link %s: the folder %s does not exist\n", claim->path, folder);
        return 0;
    }
    strcpy(claim->lock_path, claim->path);
    strcat(claim->lock_path, LOCK_SUFFIX);
    /* The lock file may be unlinked by its previous holder between our open and our flock: retry on a fresh
     * open until the file we locked is the one at the path. */
    for (attempt = 0; attempt < 10; ++attempt) {
        claim->lock_fd = open(claim->lock_path, O_RDWR | O_CREAT | O_NOFOLLOW, 0644);
        if (claim->lock_fd < 0) {
            fprintf(stderr, "hand_sim: --link %s: cannot use the lock file %s: %s\n", claim->path, claim->lock_path,
                    strerror(errno));
            return 0;
        }
        if (fstat(claim->lock_fd, &lock_st) != 0 || !S_ISREG(lock_st.st_mode)) {
            fprintf(stderr, "hand_sim: --link %s: %s is not a lock file of ours; refusing\n", claim->path,
                    claim->lock_path);
            close(claim->lock_fd);
            return 0;
        }
        if (flock(claim->lock_fd, LOCK_EX | LOCK_NB) != 0) {
            char holder[160];
            describe_holder(claim->lock_fd, holder, sizeof holder);
            fprintf(stderr, "hand_sim: --link %s is in use by %s; stop it first or choose another --link\n",
                    claim->path, holder);
            close(claim->lock_fd);
            return 0;
        }
        if (stat(claim->lock_path, &path_st) == 0 && path_st.st_ino == lock_st.st_ino &&
            path_st.st_dev == lock_st.st_dev) {
            break;
        }
        close(claim->lock_fd);
        claim->lock_fd = -1;
    }
    if (claim->lock_fd < 0) {
        fprintf(stderr, "hand_sim: --link %s: the lock file %s keeps changing; refusing\n", claim->path,
                claim->lock_path);
        return 0;
    }
    if (lock_st.st_size > 0) {
        char text[sizeof LOCK_TAG];
        ssize_t n = pread(claim->lock_fd, text, sizeof LOCK_TAG - 1, 0);
        if (n != (ssize_t)(sizeof LOCK_TAG - 1) || memcmp(text, LOCK_TAG, sizeof LOCK_TAG - 1) != 0) {
            fprintf(stderr, "hand_sim: --link %s: %s exists and is not a lock file of ours; refusing to touch it\n",
                    claim->path, claim->lock_path);
            close(claim->lock_fd);
            claim->lock_fd = -1;
            return 0;
        }
    }
    if (lstat(claim->path, &st) == 0) {
        if (!S_ISLNK(st.st_mode) || !is_stale_pty_link(claim->path, pty)) {
            fprintf(stderr, "hand_sim: --link %s is %s; refusing to replace it (remove it or choose another --link)\n",
                    claim->path, kind_of(st.st_mode));
            return give_up(claim); /* the user's file is untouched */
        }
        unlink(claim->path); /* a stale link of ours: its hand-sim is gone (we hold the lock) */
    }
    if (symlink(pty, claim->path) != 0) {
        fprintf(stderr, "hand_sim: --link %s: cannot create the link: %s\n", claim->path, strerror(errno));
        return give_up(claim);
    }
    {
        char text[96];
        int n = snprintf(text, sizeof text, LOCK_TAG "%ld, started by pid %ld\n", (long)getpid(), (long)getppid());
        if (ftruncate(claim->lock_fd, 0) != 0 || pwrite(claim->lock_fd, text, (size_t)n, 0) != (ssize_t)n) {
            fprintf(stderr, "hand_sim: --link %s: cannot write the lock file %s\n", claim->path, claim->lock_path);
        }
    }
    return 1;
}

static void release_link(link_claim *claim)
{
    char target[PATH_MAX];
    ssize_t n;
    if (claim->path == NULL || claim->lock_fd < 0) {
        return;
    }
    n = readlink(claim->path, target, sizeof target - 1);
    if (n > 0) {
        target[n] = '\0';
        if (strcmp(target, claim->target) == 0) {
            unlink(claim->path); /* only our own link: someone may have put something else there */
        }
    }
    unlink(claim->lock_path); /* while still holding it: a waiter re-checks the inode after locking */
    close(claim->lock_fd);
    claim->lock_fd = -1;
}

/* --- the loop -------------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    unsigned long watchdog_ms = CTRL_DEFAULT_WATCHDOG_MS, status_every = 20, tick_us = 1000;
    int slave_fd, i;
    struct termios raw;
    controller ctrl;
    proto_decoder decoder;
    joint_limit limits[PROTO_MAX_JOINTS];
    uint8_t n_joints;
    uint32_t last_status, shutdown_started = 0;
    uint8_t last_state;
    uint32_t drops_seen[DROP_COUNT] = {0};
    link_claim claim;
    pid_t parent = getppid();
    int shutting_down = 0;
    const char *pty;

    claim.path = NULL;
    claim.lock_fd = -1;
    for (i = 1; i < argc; ++i) {
        int has_value = i + 1 < argc;
        if (strcmp(argv[i], "--link") == 0 && has_value) {
            claim.path = argv[++i];
        } else if (strcmp(argv[i], "--watchdog-ms") == 0 && has_value) {
            if (!parse_ranged("--watchdog-ms", argv[++i], PROTO_WATCHDOG_MIN_MS, PROTO_WATCHDOG_MAX_MS, &watchdog_ms)) {
                return EXIT_USAGE;
            }
        } else if (strcmp(argv[i], "--status-every") == 0 && has_value) {
            if (!parse_ranged("--status-every", argv[++i], 1, 60000, &status_every)) {
                return EXIT_USAGE;
            }
        } else if (strcmp(argv[i], "--tick-us") == 0 && has_value) {
            if (!parse_ranged("--tick-us", argv[++i], 100, 100000, &tick_us)) {
                return EXIT_USAGE;
            }
        } else {
            fprintf(stderr,
                    "hand_sim: unknown or incomplete argument '%s'; usage: %s [--link PATH] [--watchdog-ms %u..%u] "
                    "[--status-every MS] [--tick-us US]\n",
                    argv[i], argv[0], PROTO_WATCHDOG_MIN_MS, PROTO_WATCHDOG_MAX_MS);
            return EXIT_USAGE;
        }
    }
    master_fd = posix_openpt(O_RDWR | O_NOCTTY);
    if (master_fd < 0 || grantpt(master_fd) != 0 || unlockpt(master_fd) != 0) {
        fprintf(stderr, "hand_sim: cannot create a pseudo-terminal: %s\n", strerror(errno));
        return EXIT_SYSTEM;
    }
    pty = ptsname(master_fd);
    /* Keep the slave open ourselves in raw mode: no echo of our own telemetry before a host opens it,
     * and reads on the master do not fail with EIO while no host is attached. */
    slave_fd = pty == NULL ? -1 : open(pty, O_RDWR | O_NOCTTY);
    if (slave_fd < 0 || tcgetattr(slave_fd, &raw) != 0) {
        fprintf(stderr, "hand_sim: cannot open the pty slave: %s\n", strerror(errno));
        return EXIT_SYSTEM;
    }
    cfmakeraw(&raw);
    tcsetattr(slave_fd, TCSANOW, &raw);
    fcntl(master_fd, F_SETFL, fcntl(master_fd, F_GETFL) | O_NONBLOCK);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGHUP, on_signal);
    signal(SIGPIPE, SIG_IGN);
    if (claim.path != NULL && !claim_link(&claim, pty)) {
        return EXIT_USAGE;
    }
    printf("PTY %s\n", pty);
    fflush(stdout);

    ctrl_default_limits(limits, &n_joints);
    ctrl_init(&ctrl, limits, n_joints, (uint16_t)watchdog_ms, hal_millis()); /* in range: checked above */
    proto_decoder_init(&decoder);
    last_status = hal_millis();
    last_state = ctrl.state;
    for (;;) {
        struct pollfd pfd;
        uint8_t buffer[512];
        uint32_t now;
        if (!shutting_down && (stop_requested || getppid() != parent)) {
            shutting_down = 1; /* asked to stop, or orphaned: what the watchdog would do, then exit */
            shutdown_started = hal_millis();
            ctrl_go_safe(&ctrl);
        }
        pfd.fd = master_fd;
        pfd.events = POLLIN;
        pfd.revents = 0;
        if (poll(&pfd, 1, (int)(tick_us / 1000u)) > 0 && (pfd.revents & POLLIN)) {
            ssize_t n = read(master_fd, buffer, sizeof buffer);
            ssize_t k;
            for (k = 0; k < n && !shutting_down; ++k) { /* shutting down: the host is no longer obeyed */
                proto_frame frame;
                if (proto_decoder_feed(&decoder, buffer[k], &frame)) {
                    ctrl_handle_frame(&ctrl, &frame, hal_millis());
                } else {
                    ctrl_report_new_drops(&ctrl, &decoder, drops_seen);
                }
            }
        }
        now = hal_millis();
        ctrl_tick(&ctrl, now);
        if (shutting_down && (ctrl_at_safe_pose(&ctrl) || now - shutdown_started >= SHUTDOWN_MAX_MS)) {
            print_status(&ctrl, now);
            break;
        }
        if (ctrl.state != last_state || now - last_status >= status_every) {
            print_status(&ctrl, now);
            last_status = now;
            last_state = ctrl.state;
        }
    }
    release_link(&claim);
    fprintf(stderr, "hand_sim: stopped at the %s pose; frames %lu, tx dropped %lu\n",
            ctrl_at_safe_pose(&ctrl) ? "safe" : "last (safe pose not reached in time)", (unsigned long)decoder.frames,
            tx_dropped);
    return 0;
}
