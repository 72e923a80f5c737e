/* Just enough of the Arduino core for a host build of hand_firmware.ino (host/sketch_main.cpp provides the
 * bodies): the sketch is compiled and exercised in CI without a board or an Arduino toolchain. */
#ifndef MODE2_ARDUINO_STUB_H
#define MODE2_ARDUINO_STUB_H
#include <stddef.h>
#include <stdint.h>

unsigned long millis(void);

class HardwareSerialStub {
public:
    void begin(unsigned long baud);
    int available();
    int read();
    int availableForWrite();
    size_t write(const uint8_t *data, size_t length);
};

extern HardwareSerialStub Serial;

#endif
