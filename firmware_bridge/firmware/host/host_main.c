/* The emulated hand: the firmware's controller compiled for a POSIX host, speaking over a pseudo-terminal.
 *
 *   hand_sim [--link PATH] [--watchdog-ms N] [--status-every MS] [--tick-us US]
 *
 * Prints "PTY <path>" first, then "STATUS <ms> <state> <faults> <p0> <p1> ..." lines (positions in mrad)
 * every --status-every ms and whenever the state changes. With --link, a symlink to the pty is made at PATH
 * (removed on exit), so a host can reopen the same path after the "device" is unplugged and plugged back. */
#define _XOPEN_SOURCE 600
#define _DEFAULT_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "../controller.h"
#include "../hal.h"
#include "../protocol.h"

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
    outputs[joint] = position_mrad;
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

int main(int argc, char **argv)
{
    const char *link_path = NULL;
    unsigned watchdog_ms = CTRL_DEFAULT_WATCHDOG_MS, status_every = 20, tick_us = 1000;
    int slave_fd, i;
    struct termios raw;
    controller ctrl;
    proto_decoder decoder;
    joint_limit limits[PROTO_MAX_JOINTS];
    uint8_t n_joints;
    uint32_t last_status;
    uint8_t last_state;
    uint32_t drops_seen[DROP_COUNT] = {0};

    for (i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--link") == 0 && i + 1 < argc) {
            link_path = argv[++i];
        } else if (strcmp(argv[i], "--watchdog-ms") == 0 && i + 1 < argc) {
            watchdog_ms = (unsigned)strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--status-every") == 0 && i + 1 < argc) {
            status_every = (unsigned)strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--tick-us") == 0 && i + 1 < argc) {
            tick_us = (unsigned)strtoul(argv[++i], NULL, 10);
        } else {
            fprintf(stderr, "usage: %s [--link PATH] [--watchdog-ms N] [--status-every MS] [--tick-us US]\n", argv[0]);
            return 2;
        }
    }
    master_fd = posix_openpt(O_RDWR | O_NOCTTY);
    if (master_fd < 0 || grantpt(master_fd) != 0 || unlockpt(master_fd) != 0) {
        perror("hand_sim: cannot create a pseudo-terminal");
        return 1;
    }
    /* Keep the slave open ourselves in raw mode: no echo of our own telemetry before a host opens it,
     * and reads on the master do not fail with EIO while no host is attached. */
    slave_fd = open(ptsname(master_fd), O_RDWR | O_NOCTTY);
    if (slave_fd < 0 || tcgetattr(slave_fd, &raw) != 0) {
        perror("hand_sim: cannot open the pty slave");
        return 1;
    }
    cfmakeraw(&raw);
    tcsetattr(slave_fd, TCSANOW, &raw);
    fcntl(master_fd, F_SETFL, fcntl(master_fd, F_GETFL) | O_NONBLOCK);
    if (link_path != NULL) {
        unlink(link_path);
        if (symlink(ptsname(master_fd), link_path) != 0) {
            perror("hand_sim: cannot create the link");
            return 1;
        }
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    printf("PTY %s\n", ptsname(master_fd));
    fflush(stdout);

    ctrl_default_limits(limits, &n_joints);
    ctrl_init(&ctrl, limits, n_joints, (uint16_t)watchdog_ms, hal_millis());
    proto_decoder_init(&decoder);
    last_status = hal_millis();
    last_state = ctrl.state;
    while (!stop_requested) {
        struct pollfd pfd;
        uint8_t buffer[512];
        uint32_t now;
        pfd.fd = master_fd;
        pfd.events = POLLIN;
        pfd.revents = 0;
        if (poll(&pfd, 1, (int)(tick_us / 1000u)) > 0 && (pfd.revents & POLLIN)) {
            ssize_t n = read(master_fd, buffer, sizeof buffer);
            ssize_t k;
            for (k = 0; k < n; ++k) {
                proto_frame frame;
                if (proto_decoder_feed(&decoder, buffer[k], &frame)) {
                    ctrl_handle_frame(&ctrl, &frame, hal_millis());
                } else {
                    int d;
                    for (d = 0; d < DROP_COUNT; ++d) {
                        if (decoder.drops[d] != drops_seen[d]) {
                            drops_seen[d] = decoder.drops[d];
                            ctrl_report_drop(&ctrl, (enum proto_drop)d);
                        }
                    }
                }
            }
        }
        now = hal_millis();
        ctrl_tick(&ctrl, now);
        if (ctrl.state != last_state || now - last_status >= status_every) {
            print_status(&ctrl, now);
            last_status = now;
            last_state = ctrl.state;
        }
    }
    if (link_path != NULL) {
        unlink(link_path);
    }
    fprintf(stderr, "hand_sim: frames %lu, tx dropped %lu\n", (unsigned long)decoder.frames, tx_dropped);
    return 0;
}
