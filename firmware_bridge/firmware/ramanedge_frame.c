/* ramanedge framed protocol v1, firmware side. See ramanedge_frame.h. */
#include "ramanedge_frame.h"

#include <string.h>

static const uint8_t SYNC[4] = {0xA5, 0x5A, 0x52, 0x45};

uint32_t re_crc32(uint32_t crc, const uint8_t *data, size_t len) {
    /* bitwise: 1 KiB of table is a lot of flash on a small MCU, and frames are short */
    crc = ~crc;
    for (size_t i = 0; i < len; i++) {
        crc ^= data[i];
        for (int b = 0; b < 8; b++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static void put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put_u32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put_u64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put_f64(uint8_t *p, double v) {
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits); /* IEEE 754 binary64 on every target we build for */
    put_u64(p, bits);
}

size_t re_frame_encode(uint8_t *out, size_t cap, uint8_t type, uint16_t sequence, const uint8_t *payload, uint32_t len) {
    if (len > RE_MAX_PAYLOAD || cap < RE_OVERHEAD + (size_t)len) return 0;
    memcpy(out, SYNC, 4);
    out[4] = RE_VERSION;
    out[5] = type;
    put_u16(out + 6, sequence);
    put_u32(out + 8, len);
    if (len) memmove(out + 12, payload, len);
    put_u32(out + 12 + len, re_crc32(0, out + 4, 8 + (size_t)len));
    return RE_OVERHEAD + (size_t)len;
}

size_t re_spectrum_payload(uint8_t *out, size_t cap, uint32_t counter, uint64_t time_us, uint32_t integration_us,
                           uint8_t flags, const uint16_t *counts, uint16_t pixels) {
    size_t need = 20u + 2u * (size_t)pixels;
    if (cap < need) return 0;
    put_u32(out, counter);
    put_u64(out + 4, time_us);
    put_u32(out + 12, integration_us);
    out[16] = flags;
    out[17] = 2;
    put_u16(out + 18, pixels);
    for (uint16_t i = 0; i < pixels; i++) put_u16(out + 20 + 2u * i, counts[i]);
    return need;
}

static size_t put_str(uint8_t *out, size_t cap, const char *s) {
    size_t n = strlen(s);
    if (n > 255) n = 255;
    if (cap < n + 1) return 0;
    out[0] = (uint8_t)n;
    memcpy(out + 1, s, n);
    return n + 1;
}

size_t re_identity_payload(uint8_t *out, size_t cap, uint16_t pixels, const char *model, const char *serial,
                           const char *firmware) {
    if (cap < 2) return 0;
    put_u16(out, pixels);
    size_t at = 2, n;
    const char *fields[3] = {model, serial, firmware};
    for (int i = 0; i < 3; i++) {
        if (!(n = put_str(out + at, cap - at, fields[i]))) return 0;
        at += n;
    }
    return at;
}

size_t re_calibration_payload(uint8_t *out, size_t cap, double laser_nm, const double *coefficients, uint8_t n) {
    size_t need = 9u + 8u * n;
    if (cap < need) return 0;
    put_f64(out, laser_nm);
    out[8] = n;
    for (uint8_t i = 0; i < n; i++) put_f64(out + 9 + 8u * i, coefficients[i]);
    return need;
}
