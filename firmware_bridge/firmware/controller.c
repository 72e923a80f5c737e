#include "controller.h"

#include "hal.h"

static void flag(controller *ctrl, enum ctrl_fault code)
{
    /* codes are 1..FAULT_BAD_CONFIG: bit (code - 1) of a uint16 */
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
    uint8_t payload[PROTO_FAULT_SIZE];
    flag(ctrl, code);
    payload[PROTO_FAULT_CODE] = (uint8_t)code;
    proto_put_u16(&payload[PROTO_FAULT_DETAIL], detail);
    send_frame(ctrl, MSG_FAULT, payload, PROTO_FAULT_SIZE);
}

static void send_telemetry(controller *ctrl, uint32_t now_ms)
{
    uint8_t payload[PROTO_TEL_POSITIONS + PROTO_JOINT_VALUE_SIZE * PROTO_MAX_JOINTS];
    uint8_t j;
    proto_put_u16(&payload[PROTO_TEL_ACKED_SEQ], ctrl->last_acked_seq);
    payload[PROTO_TEL_ACKED_TYPE] = ctrl->last_acked_type;
    payload[PROTO_TEL_STATE] = ctrl->state;
    proto_put_u16(&payload[PROTO_TEL_FAULTS], ctrl->faults);
    payload[PROTO_TEL_COUNT] = ctrl->n_joints;
    for (j = 0; j < ctrl->n_joints; ++j) {
        proto_put_u16(&payload[PROTO_TEL_POSITIONS + PROTO_JOINT_VALUE_SIZE * j], (uint16_t)ctrl_position_mrad(ctrl, j));
    }
    send_frame(ctrl, MSG_TELEMETRY, payload, (uint8_t)(PROTO_TEL_POSITIONS + PROTO_JOINT_VALUE_SIZE * ctrl->n_joints));
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

/* thumb flexion, thumb rotation (opposition), index, middle, ring, little: 0 = open/extended */
static const joint_limit default_limits[CTRL_DEFAULT_JOINTS] = {
    {0, 1300, 3000, 150}, {0, 1500, 2500, 200}, {0, 1600, 3500, 150},
    {0, 1600, 3500, 150}, {0, 1600, 3500, 150}, {0, 1600, 3500, 150},
};

void ctrl_default_limits(joint_limit *limits, uint8_t *n_joints)
{
    uint8_t j;
    if (limits != NULL) {
        for (j = 0; j < CTRL_DEFAULT_JOINTS; ++j) {
            limits[j] = default_limits[j];
        }
    }
    if (n_joints != NULL) {
        *n_joints = CTRL_DEFAULT_JOINTS;
    }
}

int ctrl_watchdog_in_range(unsigned long watchdog_ms)
{
    return watchdog_ms >= PROTO_WATCHDOG_MIN_MS && watchdog_ms <= PROTO_WATCHDOG_MAX_MS;
}

static int limit_valid(const joint_limit *lim)
{
    return lim->min_mrad <= lim->max_mrad && lim->safe_mrad >= lim->min_mrad && lim->safe_mrad <= lim->max_mrad &&
           lim->max_slew_mrad_s > 0;
}

static int layout_valid(const joint_limit *limits, uint8_t n_joints)
{
    uint8_t j;
    if (limits == NULL || n_joints == 0 || n_joints > PROTO_MAX_JOINTS) {
        return 0;
    }
    for (j = 0; j < n_joints; ++j) {
        if (!limit_valid(&limits[j])) {
            return 0;
        }
    }
    return 1;
}

enum ctrl_result ctrl_init(controller *ctrl, const joint_limit *limits, uint8_t n_joints, uint16_t watchdog_ms,
                           uint32_t now_ms)
{
    enum ctrl_result result = CTRL_OK;
    uint8_t j;
    if (ctrl == NULL) {
        return CTRL_REFUSED;
    }
    if (!layout_valid(limits, n_joints)) {
        limits = default_limits;
        n_joints = CTRL_DEFAULT_JOINTS;
        result = CTRL_BAD_LIMITS;
    }
    if (watchdog_ms < PROTO_WATCHDOG_MIN_MS) {
        watchdog_ms = PROTO_WATCHDOG_MIN_MS;
        result = result == CTRL_OK ? CTRL_WATCHDOG_CLAMPED : result;
    } else if (watchdog_ms > PROTO_WATCHDOG_MAX_MS) {
        watchdog_ms = PROTO_WATCHDOG_MAX_MS;
        result = result == CTRL_OK ? CTRL_WATCHDOG_CLAMPED : result;
    }
    ctrl->n_joints = n_joints;
    ctrl->actuators = PROTO_MAX_JOINTS;
    ctrl->watchdog_ms = watchdog_ms;
    for (j = 0; j < PROTO_MAX_JOINTS; ++j) {
        ctrl->limits[j] = j < n_joints ? limits[j] : default_limits[0];
        ctrl->position_urad[j] = (int32_t)ctrl->limits[j].safe_mrad * CTRL_URAD_PER_MRAD;
        ctrl->target_mrad[j] = ctrl->limits[j].safe_mrad;
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
    return result;
}

enum ctrl_result ctrl_set_watchdog(controller *ctrl, uint16_t watchdog_ms)
{
    if (ctrl == NULL || !ctrl_watchdog_in_range(watchdog_ms)) {
        return CTRL_REFUSED;
    }
    ctrl->watchdog_ms = watchdog_ms;
    return CTRL_OK;
}

enum ctrl_result ctrl_set_actuators(controller *ctrl, uint8_t actuators)
{
    if (ctrl == NULL || actuators == 0 || actuators > PROTO_MAX_JOINTS || actuators < ctrl->n_joints) {
        return CTRL_REFUSED;
    }
    ctrl->actuators = actuators;
    return CTRL_OK;
}

int16_t ctrl_position_mrad(const controller *ctrl, uint8_t joint)
{
    int32_t urad;
    if (ctrl == NULL || joint >= ctrl->n_joints || joint >= PROTO_MAX_JOINTS) {
        return 0;
    }
    urad = ctrl->position_urad[joint];
    /* round half away from zero to whole milliradians */
    return (int16_t)((urad >= 0 ? urad + CTRL_URAD_PER_MRAD / 2 : urad - CTRL_URAD_PER_MRAD / 2) / CTRL_URAD_PER_MRAD);
}

void ctrl_go_safe(controller *ctrl)
{
    if (ctrl != NULL) {
        go_safe(ctrl, ctrl->state == STATE_ESTOP ? STATE_ESTOP : STATE_SAFE);
    }
}

int ctrl_at_safe_pose(const controller *ctrl)
{
    uint8_t j;
    if (ctrl == NULL) {
        return 0;
    }
    for (j = 0; j < ctrl->n_joints; ++j) {
        if (ctrl->position_urad[j] != (int32_t)ctrl->limits[j].safe_mrad * CTRL_URAD_PER_MRAD) {
            return 0;
        }
    }
    return 1;
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
    if (frame->payload_len < PROTO_CMD_TARGETS ||
        frame->payload_len != PROTO_CMD_TARGETS + PROTO_JOINT_VALUE_SIZE * frame->payload[PROTO_CMD_COUNT]) {
        send_fault(ctrl, FAULT_BAD_LENGTH, frame->seq);
        return 0;
    }
    n = frame->payload[PROTO_CMD_COUNT];
    if (n != ctrl->n_joints) {
        send_fault(ctrl, FAULT_JOINT_COUNT_MISMATCH, n);
        return 0; /* does not feed the watchdog */
    }
    if (ctrl->state == STATE_ESTOP) {
        flag(ctrl, FAULT_ESTOP_LATCHED);
        return 1; /* received and ignored: the ack shows the latched state */
    }
    ctrl->last_valid_ms = now_ms;
    ctrl->confidence = frame->payload[PROTO_CMD_CONFIDENCE];
    if (frame->payload[PROTO_CMD_FLAGS] & PROTO_CMD_FLAG_SAFE) {
        go_safe(ctrl, STATE_SAFE); /* the host asks for what the watchdog would do, without the wait */
    } else if (frame->payload[PROTO_CMD_FLAGS] & PROTO_CMD_FLAG_ACTIVE) {
        for (j = 0; j < n; ++j) {
            const uint8_t *at = &frame->payload[PROTO_CMD_TARGETS + PROTO_JOINT_VALUE_SIZE * j];
            ctrl->target_mrad[j] = clamp_target(ctrl, j, proto_get_i16(at));
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
    if (frame->payload_len < PROTO_CFG_LIMITS ||
        frame->payload_len != PROTO_CFG_LIMITS + PROTO_CFG_LIMIT_SIZE * frame->payload[PROTO_CFG_COUNT]) {
        send_fault(ctrl, FAULT_BAD_LENGTH, frame->seq);
        return 0;
    }
    watchdog = proto_get_u16(&frame->payload[PROTO_CFG_WATCHDOG]);
    n = frame->payload[PROTO_CFG_COUNT];
    if (n == 0 || n > ctrl->actuators || !ctrl_watchdog_in_range(watchdog) || ctrl->state == STATE_ACTIVE) {
        send_fault(ctrl, FAULT_BAD_CONFIG, n);
        return 0;
    }
    for (j = 0; j < n; ++j) {
        const uint8_t *at = &frame->payload[PROTO_CFG_LIMITS + PROTO_CFG_LIMIT_SIZE * j];
        limits[j].min_mrad = proto_get_i16(at + PROTO_CFG_LIMIT_MIN);
        limits[j].max_mrad = proto_get_i16(at + PROTO_CFG_LIMIT_MAX);
        limits[j].max_slew_mrad_s = proto_get_u16(at + PROTO_CFG_LIMIT_SLEW);
        limits[j].safe_mrad = proto_get_i16(at + PROTO_CFG_LIMIT_SAFE);
        if (!limit_valid(&limits[j])) {
            send_fault(ctrl, FAULT_BAD_CONFIG, j);
            return 0;
        }
    }
    for (j = 0; j < n; ++j) {
        if (j >= ctrl->n_joints) {
            ctrl->position_urad[j] = (int32_t)limits[j].safe_mrad * CTRL_URAD_PER_MRAD;
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
    if (ctrl == NULL || frame == NULL) {
        return;
    }
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
        if (frame->payload_len != PROTO_CLEAR_ESTOP_SIZE || proto_get_u16(frame->payload) != PROTO_CLEAR_ESTOP_MAGIC) {
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
    int index = (int)reason;
    if (ctrl == NULL) {
        return;
    }
    flag(ctrl, index >= 0 && index < (int)DROP_COUNT ? map[index] : FAULT_FRAMING_ERROR);
}

void ctrl_report_new_drops(controller *ctrl, const proto_decoder *decoder, uint32_t *seen)
{
    int d;
    if (ctrl == NULL || decoder == NULL || seen == NULL) {
        return;
    }
    for (d = 0; d < (int)DROP_COUNT; ++d) {
        if (decoder->drops[d] != seen[d]) {
            seen[d] = decoder->drops[d];
            ctrl_report_drop(ctrl, (enum proto_drop)d);
        }
    }
}

void ctrl_tick(controller *ctrl, uint32_t now_ms)
{
    uint32_t dt;
    uint8_t j;
    if (ctrl == NULL) {
        return;
    }
    dt = now_ms - ctrl->last_tick_ms;
    if ((ctrl->state == STATE_ACTIVE || ctrl->state == STATE_HOLD) && now_ms - ctrl->last_valid_ms > ctrl->watchdog_ms) {
        go_safe(ctrl, STATE_SAFE);
        send_fault(ctrl, FAULT_WATCHDOG_EXPIRED, (uint16_t)(now_ms - ctrl->last_valid_ms));
    }
    if (dt > CTRL_MAX_TICK_MS) {
        dt = CTRL_MAX_TICK_MS; /* a stalled loop must not turn into one huge jump */
    }
    for (j = 0; j < ctrl->n_joints; ++j) {
        int32_t target = (int32_t)ctrl->target_mrad[j] * CTRL_URAD_PER_MRAD;
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
