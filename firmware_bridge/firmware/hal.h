/* Hardware abstraction: the only functions the controller needs from a board.
 * The Arduino sketch (hand_firmware.ino) and the host build (host/host_main.c) each implement them. */
#ifndef HAND_HAL_H
#define HAND_HAL_H
#include <stddef.h>
#include <stdint.h>

/* Milliseconds from a monotonic clock (wraps after ~49 days; the controller uses differences only). */
uint32_t hal_millis(void);

/* Queue bytes for the serial port; must not block for long (drop rather than stall the control loop). */
void hal_serial_write(const uint8_t *data, size_t length);

/* Drive actuator `joint` to `position_mrad` (e.g. a servo pulse width mapped from the joint range). */
void hal_set_joint_output(uint8_t joint, int16_t position_mrad);

#endif
