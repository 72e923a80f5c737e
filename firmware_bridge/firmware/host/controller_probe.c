/* Calls every public controller entry point with out-of-range arguments and prints what it observed, one
 * "name value" per line, so a test can check the firmware's own range checks (run under ASan + UBSan: an
 * out-of-bounds read or write aborts the program instead of printing).
 *
 *   controller_probe      prints e.g. "init_watchdog_0 20", "position_joint_255 0", ... and "done 1" last */
#include <stdio.h>

#include "../controller.h"
#include "../hal.h"

static unsigned long frames_sent = 0;
static int highest_output_joint = -1;

uint32_t hal_millis(void)
{
    return 0;
}

void hal_serial_write(const uint8_t *data, size_t length)
{
    (void)data;
    (void)length;
    frames_sent++;
}

void hal_set_joint_output(uint8_t joint, int16_t position_mrad)
{
    (void)position_mrad;
    if ((int)joint > highest_output_joint) {
        highest_output_joint = joint;
    }
}

static void show(const char *name, long value)
{
    printf("%s %ld\n", name, value);
}

static void init_with_watchdog(const char *name, uint16_t watchdog_ms)
{
    controller ctrl;
    joint_limit limits[PROTO_MAX_JOINTS];
    uint8_t n;
    enum ctrl_result result;
    ctrl_default_limits(limits, &n);
    result = ctrl_init(&ctrl, limits, n, watchdog_ms, 0);
    printf("%s %u result=%d\n", name, (unsigned)ctrl.watchdog_ms, (int)result);
}

static void init_with_layout(const char *name, const joint_limit *limits, uint8_t n)
{
    controller ctrl;
    enum ctrl_result result = ctrl_init(&ctrl, limits, n, CTRL_DEFAULT_WATCHDOG_MS, 0);
    printf("%s %u result=%d state=%u at_safe=%d\n", name, (unsigned)ctrl.n_joints, (int)result,
           (unsigned)ctrl.state, ctrl_at_safe_pose(&ctrl));
}

static void go_active(controller *ctrl, int16_t target, uint32_t now_ms)
{
    proto_frame frame;
    uint8_t j;
    frame.version = PROTO_VERSION;
    frame.type = MSG_JOINT_COMMAND;
    frame.seq = 1;
    frame.timestamp_us = 0;
    frame.payload[PROTO_CMD_FLAGS] = PROTO_CMD_FLAG_ACTIVE;
    frame.payload[PROTO_CMD_CONFIDENCE] = 255;
    frame.payload[PROTO_CMD_COUNT] = ctrl->n_joints;
    for (j = 0; j < ctrl->n_joints; ++j) {
        proto_put_u16(&frame.payload[PROTO_CMD_TARGETS + PROTO_JOINT_VALUE_SIZE * j], (uint16_t)target);
    }
    frame.payload_len = (uint8_t)(PROTO_CMD_TARGETS + PROTO_JOINT_VALUE_SIZE * ctrl->n_joints);
    ctrl_handle_frame(ctrl, &frame, now_ms);
}

int main(void)
{
    controller ctrl;
    joint_limit limits[PROTO_MAX_JOINTS], bad[PROTO_MAX_JOINTS];
    uint8_t n, j;
    uint32_t now;
    uint32_t seen[DROP_COUNT] = {0};
    proto_decoder decoder;

    init_with_watchdog("init_watchdog_0", 0);
    init_with_watchdog("init_watchdog_19", 19);
    init_with_watchdog("init_watchdog_20", 20);
    init_with_watchdog("init_watchdog_2000", 2000);
    init_with_watchdog("init_watchdog_2001", 2001);
    init_with_watchdog("init_watchdog_65535", 65535);

    ctrl_default_limits(limits, &n);
    init_with_layout("init_joints_0", limits, 0);
    init_with_layout("init_joints_17", limits, PROTO_MAX_JOINTS + 1);
    init_with_layout("init_joints_255", limits, 255);
    init_with_layout("init_limits_null", NULL, 6);
    ctrl_default_limits(bad, &n);
    bad[2].min_mrad = 900;
    bad[2].max_mrad = 100; /* min > max */
    init_with_layout("init_limits_min_above_max", bad, n);
    ctrl_default_limits(bad, &n);
    bad[4].safe_mrad = 5000; /* safe outside [min, max] */
    init_with_layout("init_limits_safe_outside", bad, n);
    ctrl_default_limits(bad, &n);
    bad[0].max_slew_mrad_s = 0;
    init_with_layout("init_limits_zero_slew", bad, n);
    init_with_layout("init_limits_three_valid", limits, 3);

    ctrl_init(&ctrl, limits, 6, CTRL_DEFAULT_WATCHDOG_MS, 0);
    show("set_watchdog_19", (long)ctrl_set_watchdog(&ctrl, 19));
    show("set_watchdog_2001", (long)ctrl_set_watchdog(&ctrl, 2001));
    show("set_watchdog_65535", (long)ctrl_set_watchdog(&ctrl, 65535));
    show("watchdog_after_refusals", (long)ctrl.watchdog_ms);
    show("set_watchdog_2000", (long)ctrl_set_watchdog(&ctrl, 2000));
    show("watchdog_after_2000", (long)ctrl.watchdog_ms);
    show("set_watchdog_null", (long)ctrl_set_watchdog(NULL, 150));

    show("position_joint_5", (long)ctrl_position_mrad(&ctrl, 5));
    show("position_joint_6", (long)ctrl_position_mrad(&ctrl, 6));
    show("position_joint_16", (long)ctrl_position_mrad(&ctrl, PROTO_MAX_JOINTS));
    show("position_joint_255", (long)ctrl_position_mrad(&ctrl, 255));
    show("position_null", (long)ctrl_position_mrad(NULL, 0));

    ctrl.faults = 0;
    ctrl_report_drop(&ctrl, (enum proto_drop)DROP_COUNT);
    show("drop_unknown_reason_faults", (long)ctrl.faults);
    ctrl.faults = 0;
    ctrl_report_drop(&ctrl, (enum proto_drop)200);
    show("drop_reason_200_faults", (long)ctrl.faults);
    ctrl.faults = 0;
    ctrl_report_drop(&ctrl, DROP_CRC);
    show("drop_crc_faults", (long)ctrl.faults);
    ctrl_report_drop(NULL, DROP_CRC);

    proto_decoder_init(&decoder);
    decoder.drops[DROP_VERSION] = 3;
    ctrl.faults = 0;
    ctrl_report_new_drops(&ctrl, &decoder, seen);
    show("new_drops_version_faults", (long)ctrl.faults);
    ctrl.faults = 0;
    ctrl_report_new_drops(&ctrl, &decoder, seen);
    show("new_drops_again_faults", (long)ctrl.faults);
    ctrl_report_new_drops(&ctrl, NULL, seen);
    ctrl_report_new_drops(&ctrl, &decoder, NULL);

    ctrl_handle_frame(&ctrl, NULL, 0);
    ctrl_handle_frame(NULL, NULL, 0);
    ctrl_tick(NULL, 0);
    ctrl_go_safe(NULL);
    show("at_safe_null", (long)ctrl_at_safe_pose(NULL));
    ctrl_default_limits(NULL, NULL);
    show("init_null", (long)ctrl_init(NULL, limits, 6, 150, 0));
    proto_decoder_init(NULL);
    show("feed_null", (long)proto_decoder_feed(NULL, 0, NULL));
    show("encode_null", (long)proto_encode(NULL, NULL, 0));

    /* ACTIVE at a grip, then the shutdown path: SAFE and easing until the safe pose, never above n_joints */
    ctrl_init(&ctrl, limits, 6, CTRL_DEFAULT_WATCHDOG_MS, 0);
    go_active(&ctrl, 1500, 0);
    show("state_after_command", (long)ctrl.state);
    for (now = 1; now <= 1000; ++now) {
        ctrl_tick(&ctrl, now);
        go_active(&ctrl, 1500, now);
    }
    show("index_after_grip", (long)ctrl_position_mrad(&ctrl, 2));
    ctrl_go_safe(&ctrl);
    show("state_after_go_safe", (long)ctrl.state);
    for (now = 1001; now <= 3000 && !ctrl_at_safe_pose(&ctrl); ++now) {
        ctrl_tick(&ctrl, now);
    }
    show("ms_to_safe_pose", (long)(now - 1001));
    show("at_safe_pose", (long)ctrl_at_safe_pose(&ctrl));
    for (j = 0; j < ctrl.n_joints; ++j) {
        if (ctrl_position_mrad(&ctrl, j) != limits[j].safe_mrad) {
            show("not_at_safe_joint", (long)j);
        }
    }
    show("highest_output_joint", (long)highest_output_joint);
    show("frames_sent_positive", (long)(frames_sent > 0));
    show("done", 1);
    return 0;
}
