/* The hand's safety controller: state machine, watchdog, joint limits, slew limiting, e-stop latch,
 * acknowledgements and telemetry. Portable C99, no heap; talks to hardware only through hal.h.
 *
 * Every public function checks its arguments: a NULL pointer, a joint index past the configured joints, an
 * unknown drop reason or a watchdog outside PROTO_WATCHDOG_MIN_MS..PROTO_WATCHDOG_MAX_MS never reads or
 * writes outside the controller, and never leaves it in a state the protocol does not allow. */
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

/* What ctrl_init / ctrl_set_watchdog say about the arguments they were given. */
enum ctrl_result {
    CTRL_OK = 0,
    CTRL_WATCHDOG_CLAMPED = 1, /* ctrl_init: watchdog outside the range, the nearest bound was used */
    CTRL_BAD_LIMITS = 2,       /* ctrl_init: NULL/0 joints/invalid limits, the default layout was used */
    CTRL_REFUSED = 3           /* ctrl_set_watchdog: out of range or NULL, nothing changed */
};

typedef struct {
    int16_t min_mrad;
    int16_t max_mrad;
    uint16_t max_slew_mrad_s;
    int16_t safe_mrad;
} joint_limit;

typedef struct {
    uint8_t n_joints;
    uint8_t actuators; /* joints the board can drive: CONFIGURE for more is refused (FAULT_BAD_CONFIG) */
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

#define CTRL_TELEMETRY_PERIOD_MS 100u
#define CTRL_DEFAULT_WATCHDOG_MS 150u
#define CTRL_DEFAULT_JOINTS 6u
#define CTRL_URAD_PER_MRAD 1000
#define CTRL_MAX_TICK_MS 1000u /* a stalled loop moves at most this long's slew in one tick, never a jump */

/* Default actuator layout (6): thumb flexion, thumb rotation, index, middle, ring, little finger.
 * `limits` must hold at least CTRL_DEFAULT_JOINTS entries. */
void ctrl_default_limits(joint_limit *limits, uint8_t *n_joints);

/* Starts in IDLE at the safe pose. Never leaves the controller half-initialised: a watchdog outside the
 * range is clamped to it (CTRL_WATCHDOG_CLAMPED); NULL limits, 0 or more than PROTO_MAX_JOINTS joints, or
 * a limit with min > max, safe outside [min, max] or zero slew give the default layout (CTRL_BAD_LIMITS). */
enum ctrl_result ctrl_init(controller *ctrl, const joint_limit *limits, uint8_t n_joints, uint16_t watchdog_ms,
                           uint32_t now_ms);

/* Replaces the watchdog period; refuses (CTRL_REFUSED, nothing changed) outside the range. */
enum ctrl_result ctrl_set_watchdog(controller *ctrl, uint16_t watchdog_ms);

/* Declares how many joints the board drives (1..PROTO_MAX_JOINTS; ctrl_init assumes PROTO_MAX_JOINTS).
 * Refused (CTRL_REFUSED, nothing changed) out of range or below the joints already configured. */
enum ctrl_result ctrl_set_actuators(controller *ctrl, uint8_t actuators);

/* 1 when `watchdog_ms` is a period the device accepts (PROTO_WATCHDOG_MIN_MS..PROTO_WATCHDOG_MAX_MS). */
int ctrl_watchdog_in_range(unsigned long watchdog_ms);

void ctrl_handle_frame(controller *ctrl, const proto_frame *frame, uint32_t now_ms);

/* Reports a frame the decoder dropped as a fault (an unknown reason counts as a framing error). */
void ctrl_report_drop(controller *ctrl, enum proto_drop reason);

/* Reports every drop the decoder counted since the last call (`seen` holds DROP_COUNT counters). */
void ctrl_report_new_drops(controller *ctrl, const proto_decoder *decoder, uint32_t *seen);

/* Advance the watchdog and the motion to `now_ms`; drives the outputs; sends periodic telemetry. */
void ctrl_tick(controller *ctrl, uint32_t now_ms);

/* What the watchdog does, on demand (shutdown): SAFE and easing to the safe pose; an e-stop stays latched. */
void ctrl_go_safe(controller *ctrl);

/* 1 when every joint is at its safe position. */
int ctrl_at_safe_pose(const controller *ctrl);

/* The joint's current position; 0 for a joint index at or past n_joints (or a NULL controller). */
int16_t ctrl_position_mrad(const controller *ctrl, uint8_t joint);

#endif
