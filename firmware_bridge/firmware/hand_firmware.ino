/* Arduino-style sketch: the reference firmware on a board with hobby servos (e.g. an Arduino Mega or a
 * Teensy). The core (controller.c, protocol.c, cobs.c, crc16.c) is portable C99; this file only provides the
 * hal.h functions and the loop. Copy the .c/.h files next to this sketch (Arduino compiles them with it).
 *
 * Actuators (controller.c ctrl_default_limits): 0 thumb flexion, 1 thumb rotation, 2 index, 3 middle,
 * 4 ring, 5 little finger; position 0 mrad = open/extended, limits in milliradians. SERVO_PINS and the
 * pulse range must match the hand's linkage: calibrate before connecting tendons. */
#include <Servo.h>

extern "C" {
#include "controller.h"
#include "hal.h"
#include "protocol.h"
}

#define N_SERVOS 6 /* the joints this board drives: CONFIGURE for more is refused with a FAULT */
static const uint8_t SERVO_PINS[N_SERVOS] = {3, 5, 6, 9, 10, 11};
static const int PULSE_MIN_US = 1000; /* at each joint's minimum */
static const int PULSE_MAX_US = 2000; /* at each joint's maximum */

static Servo servos[N_SERVOS];
static controller ctrl;
static proto_decoder decoder;
static uint32_t drops_seen[DROP_COUNT];

extern "C" uint32_t hal_millis(void) { return millis(); }

extern "C" void hal_serial_write(const uint8_t *data, size_t length)
{
    if ((size_t)Serial.availableForWrite() >= length) { /* never block the control loop */
        Serial.write(data, length);
    }
}

extern "C" void hal_set_joint_output(uint8_t joint, int16_t position_mrad)
{
    const joint_limit *lim;
    long span, pulse;
    if (joint >= N_SERVOS) {
        return; /* checked before reading the limits: no read past the configured joints */
    }
    lim = &ctrl.limits[joint];
    span = (long)lim->max_mrad - lim->min_mrad;
    pulse = span > 0 ? PULSE_MIN_US + ((long)position_mrad - lim->min_mrad) * (PULSE_MAX_US - PULSE_MIN_US) / span
                     : PULSE_MIN_US;
    servos[joint].writeMicroseconds((int)pulse);
}

void setup()
{
    joint_limit limits[PROTO_MAX_JOINTS];
    uint8_t n_joints, j;
    Serial.begin(115200);
    ctrl_default_limits(limits, &n_joints);
    ctrl_init(&ctrl, limits, n_joints, CTRL_DEFAULT_WATCHDOG_MS, millis());
    ctrl_set_actuators(&ctrl, N_SERVOS);
    proto_decoder_init(&decoder);
    for (j = 0; j < N_SERVOS; ++j) {
        servos[j].attach(SERVO_PINS[j]);
    }
    ctrl_tick(&ctrl, millis()); /* drive the safe pose at once */
}

void loop()
{
    while (Serial.available() > 0) {
        proto_frame frame;
        if (proto_decoder_feed(&decoder, (uint8_t)Serial.read(), &frame)) {
            ctrl_handle_frame(&ctrl, &frame, millis());
        } else {
            ctrl_report_new_drops(&ctrl, &decoder, drops_seen); /* as the emulated hand does */
        }
    }
    ctrl_tick(&ctrl, millis());
}
