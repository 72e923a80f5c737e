#include "controller.h"

#include "hal.h"

static void flag(controller *ctrl, enum ctrl_fault code)
{
    ctrl->faults = (uint16_t)(ctrl->faults | (1u << (code - 1)));
}

static void send_frame(controller *ctrl, uint8_t type, const uint8_t *payload, uint8_t length)
{
    proto_frame frame;
    uint8_t wire[PROTO_MAX_ENCODED + 1];
    size_t i, n;
    frame.version = PROTO_VERSION;
    frame.type = type;
    frame.seq = ctrl->tx_seq++;
    frame.timestamp_us = ctrl->last_host_timestamp;
    frame.payload_len = length;
    for (i = 0; i < length; ++i) {
        frame.payload[i] = payload[i];
    }
    n = proto_encode(&frame, wire, sizeof wire);
    if (n > 0) {
        hal_serial_write(wire, n);
    }
}

static void send_fault(controller *ctrl, enum ctrl_fault code, uint16_t detail)
{
    uint8_t payload[3];
    flag(ctrl, code);
    payload[0] = (uint8_t)code;
    proto_put_u16(&payload[1], detail);
    send_frame(ctrl, MSG_FAULT, payload, 3);
}

static void send_telemetry(controller *ctrl, uint32_t now_ms)
{
    uint8_t payload[7 + 2 * PROTO_MAX_JOINTS];
    uint8_t j;
    proto_put_u16(&payload[0], ctrl->last_acked_seq);
    payload[2] = ctrl->last_acked_type;
    payload[3] = ctrl->state;
    proto_put_u16(&payload[4], ctrl->faults);
    payload[6] = ctrl->n_joints;
    for (j = 0; j < ctrl->n_joints; ++j) {
        proto_put_u16(&payload[7 + 2 * j], (uint16_t)ctrl_position_mrad(ctrl, j));
    }
    send_frame(ctrl, MSG_TELEMETRY, payload, (uint8_t)(7 + 2 * ctrl->n_joints));
    ctrl->faults = 0;
    ctrl->last_telemetry_ms = now_ms;
}

static void go_safe(controller *ctrl, uint8_t state)
{
    uint8_t j;
    ctrl->state = state;
    for (j = 0; j < ctrl->n_joints; ++j) {
        ctrl->target_mrad[j] = ctrl->limits[j].safe_mrad;
    }
}

void ctrl_default_limits(joint_limit *limits, uint8_t *n_joints)
{
    /* thumb flexion, thumb rotation (opposition), index, middle, ring, little: 0 = open/extended */
    static const joint_limit defaults[6] = {
        {0, 1300, 3000, 150}, {0, 1500, 2500, 200}, {0, 1600, 3500, 150},
        {0, 1600, 3500, 150}, {0, 1600, 3500, 150}, {0, 1600, 3500, 150},
    };
    uint8_t j;
    for (j = 0; j < 6; ++j) {
        limits[j] = defaults[j];
    }
    *n_joints = 6;
}

void ctrl_init(controller *ctrl, const joint_limit *limits, uint8_t n_joints, uint16_t watchdog_ms, uint32_t now_ms)
{
    uint8_t j;
    ctrl->n_joints = n_joints > PROTO_MAX_JOINTS ? PROTO_MAX_JOINTS : n_joints;
    ctrl->watchdog_ms = watchdog_ms;
    for (j = 0; j < ctrl->n_joints; ++j) {
        ctrl->limits[j] = limits[j];
        ctrl->position_urad[j] = (int32_t)limits[j].safe_mrad * 1000;
    }
    ctrl->faults = 0;
    ctrl->tx_seq = 0;
    ctrl->last_acked_seq = 0;
    ctrl->last_acked_type = 0;
    ctrl->last_host_timestamp = 0;
    ctrl->confidence = 0;
    ctrl->last_valid_ms = now_ms;
    ctrl->last_tick_ms = now_ms;
    ctrl->last_telemetry_ms = now_ms;
    go_safe(ctrl, STATE_IDLE);
}

int16_t ctrl_position_mrad(const controller *ctrl, uint8_t joint)
{
    int32_t urad = ctrl->position_urad[joint];
    return (int16_t)((urad >= 0 ? urad + 500 : urad - 500) / 1000);
}

static int16_t clamp_target(controller *ctrl, uint8_t joint, int16_t target)
{
    const joint_limit *lim = &ctrl->limits[joint];
    if (target < lim->min_mrad) {
        flag(ctrl, FAULT_LIMIT_CLAMPED);
        return lim->min_mrad;
    }
    if (target > lim->max_mrad) {
        flag(ctrl, FAULT_LIMIT_CLAMPED);
        return lim->max_mrad;
    }
    return target;
}

/* Returns 1 when the frame is acknowledged, 0 when it was rejected (a FAULT frame says why). */
static int handle_joint_command(controller *ctrl, const proto_frame *frame, uint32_t now_ms)
{
    uint8_t n, j;
    if (frame->payload_len < 3 || frame->payload_len != 3 + 2 * frame->payload[2]) {
        send_fault(ctrl, FAULT_BAD_LENGTH, frame->seq);
        return 0;
    }
    n = frame->payload[2];
    if (n != ctrl->n_joints) {
        send_fault(ctrl, FAULT_JOINT_COUNT_MISMATCH, n);
        return 0; /* does not feed the watchdog */
    }
    if (ctrl->state == STATE_ESTOP) {
        flag(ctrl, FAULT_ESTOP_LATCHED);
        return 1; /* received and ignored: the ack shows the latched state */
    }
    ctrl->last_valid_ms = now_ms;
    ctrl->confidence = frame->payload[1];
    if (frame->payload[0] & 1u) {
        for (j = 0; j < n; ++j) {
            ctrl->target_mrad[j] = clamp_target(ctrl, j, proto_get_i16(&frame->payload[3 + 2 * j]));
        }
        ctrl->state = STATE_ACTIVE;
    } else if (ctrl->state == STATE_ACTIVE) {
        ctrl->state = STATE_HOLD; /* gate closed on the host: hold the last active targets */
    }
    return 1;
}

static int handle_configure(controller *ctrl, const proto_frame *frame)
{
    uint16_t watchdog;
    uint8_t n, j;
    joint_limit limits[PROTO_MAX_JOINTS];
    if (frame->payload_len < 3 || frame->payload_len != 3 + 8 * frame->payload[2]) {
        send_fault(ctrl, FAULT_BAD_LENGTH, frame->seq);
        return 0;
    }
    watchdog = proto_get_u16(&frame->payload[0]);
    n = frame->payload[2];
    if (n == 0 || n > PROTO_MAX_JOINTS || watchdog < 20 || watchdog > 2000 || ctrl->state == STATE_ACTIVE) {
        send_fault(ctrl, FAULT_BAD_CONFIG, n);
        return 0;
    }
    for (j = 0; j < n; ++j) {
        const uint8_t *at = &frame->payload[3 + 8 * j];
        limits[j].min_mrad = proto_get_i16(at);
        limits[j].max_mrad = proto_get_i16(at + 2);
        limits[j].max_slew_mrad_s = proto_get_u16(at + 4);
        limits[j].safe_mrad = proto_get_i16(at + 6);
        if (limits[j].min_mrad > limits[j].max_mrad || limits[j].safe_mrad < limits[j].min_mrad ||
            limits[j].safe_mrad > limits[j].max_mrad || limits[j].max_slew_mrad_s == 0) {
            send_fault(ctrl, FAULT_BAD_CONFIG, j);
            return 0;
        }
    }
    for (j = 0; j < n; ++j) {
        if (j >= ctrl->n_joints) {
            ctrl->position_urad[j] = (int32_t)limits[j].safe_mrad * 1000;
        }
        ctrl->limits[j] = limits[j];
    }
    ctrl->n_joints = n;
    ctrl->watchdog_ms = watchdog;
    go_safe(ctrl, ctrl->state == STATE_ESTOP ? STATE_ESTOP : STATE_IDLE);
    return 1;
}

void ctrl_handle_frame(controller *ctrl, const proto_frame *frame, uint32_t now_ms)
{
    ctrl->last_host_timestamp = frame->timestamp_us;
    switch (frame->type) {
    case MSG_JOINT_COMMAND:
        if (!handle_joint_command(ctrl, frame, now_ms)) {
            return;
        }
        break;
    case MSG_HEARTBEAT:
        if (frame->payload_len != 0) {
            send_fault(ctrl, FAULT_BAD_LENGTH, frame->seq);
            return;
        }
        if (ctrl->state != STATE_ESTOP) {
            ctrl->last_valid_ms = now_ms;
        }
        break;
    case MSG_ESTOP:
        go_safe(ctrl, STATE_ESTOP);
        flag(ctrl, FAULT_ESTOP_LATCHED);
        break;
    case MSG_CLEAR_ESTOP:
        if (frame->payload_len != 2 || proto_get_u16(frame->payload) != PROTO_CLEAR_ESTOP_MAGIC) {
            send_fault(ctrl, FAULT_BAD_CLEAR_MAGIC, frame->seq);
            return;
        }
        if (ctrl->state == STATE_ESTOP) {
            go_safe(ctrl, STATE_IDLE);
            ctrl->last_valid_ms = now_ms;
        }
        break;
    case MSG_CONFIGURE:
        if (!handle_configure(ctrl, frame)) {
            return;
        }
        break;
    default:
        send_fault(ctrl, FAULT_UNKNOWN_TYPE, frame->type);
        return;
    }
    ctrl->last_acked_seq = frame->seq;
    ctrl->last_acked_type = frame->type;
    send_telemetry(ctrl, now_ms);
}

void ctrl_report_drop(controller *ctrl, enum proto_drop reason)
{
    static const enum ctrl_fault map[DROP_COUNT] = {
        FAULT_FRAMING_ERROR, FAULT_FRAMING_ERROR, FAULT_FRAMING_ERROR, FAULT_CRC_ERROR,
        FAULT_BAD_VERSION,   FAULT_BAD_LENGTH,    FAULT_UNKNOWN_TYPE,
    };
    flag(ctrl, map[reason]);
}

void ctrl_tick(controller *ctrl, uint32_t now_ms)
{
    uint32_t dt = now_ms - ctrl->last_tick_ms;
    uint8_t j;
    if ((ctrl->state == STATE_ACTIVE || ctrl->state == STATE_HOLD) && now_ms - ctrl->last_valid_ms > ctrl->watchdog_ms) {
        go_safe(ctrl, STATE_SAFE);
        send_fault(ctrl, FAULT_WATCHDOG_EXPIRED, (uint16_t)(now_ms - ctrl->last_valid_ms));
    }
    if (dt > 1000u) {
        dt = 1000u; /* a stalled loop must not turn into one huge jump */
    }
    for (j = 0; j < ctrl->n_joints; ++j) {
        int32_t target = (int32_t)ctrl->target_mrad[j] * 1000;
        int32_t step = (int32_t)ctrl->limits[j].max_slew_mrad_s * (int32_t)dt; /* mrad/s × ms = µrad */
        int32_t delta = target - ctrl->position_urad[j];
        if (delta > step) {
            delta = step;
        } else if (delta < -step) {
            delta = -step;
        }
        ctrl->position_urad[j] += delta;
        hal_set_joint_output(j, ctrl_position_mrad(ctrl, j));
    }
    ctrl->last_tick_ms = now_ms;
    if (now_ms - ctrl->last_telemetry_ms >= CTRL_TELEMETRY_PERIOD_MS) {
        send_telemetry(ctrl, now_ms);
    }
}
