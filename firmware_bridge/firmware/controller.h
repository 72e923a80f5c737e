/* The hand's safety controller: state machine, watchdog, joint limits, slew limiting, e-stop latch,
 * acknowledgements and telemetry. Portable C99, no heap; talks to hardware only through hal.h. */
#ifndef HAND_CONTROLLER_H
#define HAND_CONTROLLER_H
#include <stdint.h>

#include "protocol.h"

enum ctrl_state { STATE_IDLE = 0, STATE_ACTIVE = 1, STATE_HOLD = 2, STATE_SAFE = 3, STATE_ESTOP = 4 };

enum ctrl_fault {
    FAULT_CRC_ERROR = 1,
    FAULT_FRAMING_ERROR = 2,
    FAULT_BAD_VERSION = 3,
    FAULT_BAD_LENGTH = 4,
    FAULT_UNKNOWN_TYPE = 5,
    FAULT_JOINT_COUNT_MISMATCH = 6,
    FAULT_LIMIT_CLAMPED = 7,
    FAULT_WATCHDOG_EXPIRED = 8,
    FAULT_ESTOP_LATCHED = 9,
    FAULT_BAD_CLEAR_MAGIC = 10,
    FAULT_BAD_CONFIG = 11
};

typedef struct {
    int16_t min_mrad;
    int16_t max_mrad;
    uint16_t max_slew_mrad_s;
    int16_t safe_mrad;
} joint_limit;

typedef struct {
    uint8_t n_joints;
    joint_limit limits[PROTO_MAX_JOINTS];
    uint16_t watchdog_ms;
    uint8_t state;
    int32_t position_urad[PROTO_MAX_JOINTS]; /* micro-radians: slew steps below 1 mrad per tick */
    int16_t target_mrad[PROTO_MAX_JOINTS];
    uint32_t last_valid_ms;
    uint32_t last_tick_ms;
    uint32_t last_telemetry_ms;
    uint16_t faults;      /* bit (code - 1) for each fault since the last telemetry */
    uint16_t tx_seq;
    uint16_t last_acked_seq;
    uint8_t last_acked_type;
    uint32_t last_host_timestamp;
    uint8_t confidence;
} controller;

/* Default actuator layout (6): thumb flexion, thumb rotation, index, middle, ring, little finger. */
void ctrl_default_limits(joint_limit *limits, uint8_t *n_joints);
void ctrl_init(controller *ctrl, const joint_limit *limits, uint8_t n_joints, uint16_t watchdog_ms, uint32_t now_ms);
void ctrl_handle_frame(controller *ctrl, const proto_frame *frame, uint32_t now_ms);
void ctrl_report_drop(controller *ctrl, enum proto_drop reason);
/* Advance the watchdog and the motion to `now_ms`; drives the outputs; sends periodic telemetry. */
void ctrl_tick(controller *ctrl, uint32_t now_ms);
int16_t ctrl_position_mrad(const controller *ctrl, uint8_t joint);

#define CTRL_TELEMETRY_PERIOD_MS 100u
#define CTRL_DEFAULT_WATCHDOG_MS 150u

#endif
