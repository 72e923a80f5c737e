/* Runs hand_firmware.ino on the host against the stub Arduino core: a fake clock, a serial port fed from
 * here, servos that remember their last pulse. Prints "name value" lines for tests/firmware_bridge.
 *
 *   sketch      setup(), a grip, line noise, the watchdog, then CONFIGURE for more joints than servos */
#include <stdio.h>
#include <string.h>

#include "Arduino.h"
#include "Servo.h"

extern "C" {
#include "../controller.h"
#include "../protocol.h"
}

void setup();
void loop();

HardwareSerialStub Serial;
static unsigned long now_ms = 0;
static uint8_t rx[4096];
static size_t rx_head = 0, rx_tail = 0;
static Servo *servos_seen[16];
static int n_servos_seen = 0;
static proto_decoder tx_decoder;
static int last_fault_code = -1, last_fault_detail = -1, last_acked_type = -1;
static unsigned last_faults = 0, faults_seen = 0;
static uint16_t host_seq = 0;

unsigned long millis(void) { return now_ms; }
void HardwareSerialStub::begin(unsigned long baud) { (void)baud; }
int HardwareSerialStub::available() { return (int)(rx_tail - rx_head); }
int HardwareSerialStub::read() { return rx_head < rx_tail ? rx[rx_head++] : -1; }
int HardwareSerialStub::availableForWrite() { return 64; }

size_t HardwareSerialStub::write(const uint8_t *data, size_t length)
{
    size_t i;
    for (i = 0; i < length; ++i) {
        proto_frame frame;
        if (proto_decoder_feed(&tx_decoder, data[i], &frame)) {
            if (frame.type == MSG_FAULT) {
                last_fault_code = frame.payload[PROTO_FAULT_CODE];
                last_fault_detail = proto_get_u16(&frame.payload[PROTO_FAULT_DETAIL]);
            } else if (frame.type == MSG_TELEMETRY) {
                last_acked_type = frame.payload[PROTO_TEL_ACKED_TYPE];
                last_faults = proto_get_u16(&frame.payload[PROTO_TEL_FAULTS]);
                faults_seen |= last_faults;
            }
        }
    }
    return length;
}

uint8_t Servo::attach(int servo_pin)
{
    pin = servo_pin;
    if (n_servos_seen < 16) {
        servos_seen[n_servos_seen++] = this;
    }
    return 1;
}

void Servo::writeMicroseconds(int us) { pulse_us = us; }

static void receive(const uint8_t *bytes, size_t n)
{
    if (rx_head == rx_tail) {
        rx_head = rx_tail = 0;
    }
    if (rx_tail + n <= sizeof rx) {
        memcpy(&rx[rx_tail], bytes, n);
        rx_tail += n;
    }
}

static void send(uint8_t type, const uint8_t *payload, uint8_t length)
{
    proto_frame frame;
    uint8_t wire[PROTO_MAX_ENCODED + 1];
    size_t n;
    frame.version = PROTO_VERSION;
    frame.type = type;
    frame.seq = ++host_seq;
    frame.timestamp_us = (uint32_t)now_ms * 1000u;
    frame.payload_len = length;
    memcpy(frame.payload, payload, length);
    n = proto_encode(&frame, wire, sizeof wire);
    receive(wire, n);
}

static void command_all(int16_t target)
{
    uint8_t payload[PROTO_CMD_TARGETS + PROTO_JOINT_VALUE_SIZE * 6];
    uint8_t j;
    payload[PROTO_CMD_FLAGS] = PROTO_CMD_FLAG_ACTIVE;
    payload[PROTO_CMD_CONFIDENCE] = 255;
    payload[PROTO_CMD_COUNT] = 6;
    for (j = 0; j < 6; ++j) {
        proto_put_u16(&payload[PROTO_CMD_TARGETS + PROTO_JOINT_VALUE_SIZE * j], (uint16_t)target);
    }
    send(MSG_JOINT_COMMAND, payload, sizeof payload);
}

static void configure(uint8_t n_joints)
{
    uint8_t payload[PROTO_CFG_LIMITS + PROTO_CFG_LIMIT_SIZE * PROTO_MAX_JOINTS];
    uint8_t j;
    proto_put_u16(&payload[PROTO_CFG_WATCHDOG], 150);
    payload[PROTO_CFG_COUNT] = n_joints;
    for (j = 0; j < n_joints; ++j) {
        uint8_t *at = &payload[PROTO_CFG_LIMITS + PROTO_CFG_LIMIT_SIZE * j];
        proto_put_u16(at + PROTO_CFG_LIMIT_MIN, 0);
        proto_put_u16(at + PROTO_CFG_LIMIT_MAX, 1000);
        proto_put_u16(at + PROTO_CFG_LIMIT_SLEW, 3000);
        proto_put_u16(at + PROTO_CFG_LIMIT_SAFE, 100);
    }
    send(MSG_CONFIGURE, payload, (uint8_t)(PROTO_CFG_LIMITS + PROTO_CFG_LIMIT_SIZE * n_joints));
}

static void run_for(unsigned long ms, int16_t command_target)
{
    unsigned long end = now_ms + ms;
    while (now_ms < end) {
        if (command_target >= 0 && now_ms % 20 == 0) {
            command_all(command_target);
        }
        loop();
        ++now_ms;
    }
}

static void show_pulses(const char *name)
{
    int k;
    printf("%s", name);
    for (k = 0; k < n_servos_seen; ++k) {
        printf(" %d", servos_seen[k]->pulse_us);
    }
    printf("\n");
}

int main(void)
{
    static const uint8_t noise[] = {0x07, 0x01, 0x02, 0x03, 0x00}; /* a frame too short to be one */
    proto_decoder_init(&tx_decoder);
    setup();
    printf("servos %d\n", n_servos_seen);
    show_pulses("pulses_after_setup");
    run_for(1000, 1600); /* a full grip, commanded at 50 Hz */
    show_pulses("pulses_gripping");
    faults_seen = 0;
    receive(noise, sizeof noise);
    run_for(200, 1600);
    printf("faults_after_noise %u\n", faults_seen);
    run_for(300, -1); /* the host goes quiet: watchdog, SAFE */
    last_fault_code = -1;
    configure(7);
    run_for(5, -1);
    printf("configure_7_fault %d detail %d\n", last_fault_code, last_fault_detail);
    last_fault_code = -1;
    configure(6);
    run_for(5, -1);
    printf("configure_6_acked_type %d fault %d\n", last_acked_type, last_fault_code);
    run_for(1000, -1);
    show_pulses("pulses_after_configure");
    printf("done 1\n");
    return 0;
}
