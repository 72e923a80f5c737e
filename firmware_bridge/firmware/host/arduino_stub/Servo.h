/* The Servo library's interface as hand_firmware.ino uses it (host build; bodies in host/sketch_main.cpp). */
#ifndef MODE2_SERVO_STUB_H
#define MODE2_SERVO_STUB_H
#include <stdint.h>

class Servo {
public:
    Servo() : pin(-1), pulse_us(-1) {}
    uint8_t attach(int pin);
    void writeMicroseconds(int us);
    int pin;
    int pulse_us;
};

#endif
