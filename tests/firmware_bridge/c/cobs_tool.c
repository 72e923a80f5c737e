/* The firmware's COBS codec (firmware_bridge/firmware/cobs.c) alone, as a line tool for the tests:
 *   stdin  "E <hex>" -> stdout hex of cobs_encode(bytes)       (no delimiter)
 *          "D <hex>" -> stdout hex of cobs_decode(bytes), or "ERR" when it refuses them
 * so the protocol vectors' wire bytes are checked against a COBS that did not write them. */
#include <stdio.h>
#include <string.h>

#include "cobs.h"

#define MAX_BYTES 4096

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static size_t parse_hex(const char *text, unsigned char *out)
{
    size_t n = 0;
    while (text[0] && text[1] && hexval(text[0]) >= 0 && hexval(text[1]) >= 0 && n < MAX_BYTES) {
        out[n++] = (unsigned char)(hexval(text[0]) * 16 + hexval(text[1]));
        text += 2;
    }
    return n;
}

static void print_hex(const unsigned char *bytes, size_t n)
{
    size_t i;
    for (i = 0; i < n; ++i) printf("%02x", bytes[i]);
    printf("\n");
}

int main(void)
{
    static char line[2 * MAX_BYTES + 16];
    static unsigned char in[MAX_BYTES], out[2 * MAX_BYTES];
    while (fgets(line, sizeof line, stdin)) {
        size_t n = parse_hex(line + 2, in);
        if (line[0] == 'E') {
            size_t written = cobs_encode(in, n, out, sizeof out);
            if (written == 0) {
                printf("ERR\n");
            } else {
                print_hex(out, written);
            }
        } else if (line[0] == 'D') {
            long decoded = cobs_decode(in, n, out, sizeof out);
            if (decoded < 0) {
                printf("ERR\n");
            } else {
                print_hex(out, (size_t)decoded);
            }
        } else {
            fprintf(stderr, "cobs_tool: lines start with E or D\n");
            return 2;
        }
        fflush(stdout);
    }
    return 0;
}
