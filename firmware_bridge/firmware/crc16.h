/* CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, not reflected, xorout 0. check("123456789") = 0x29B1. */
#ifndef HAND_CRC16_H
#define HAND_CRC16_H
#include <stddef.h>
#include <stdint.h>

uint16_t crc16_ccitt_false(const uint8_t *data, size_t length);

#endif
