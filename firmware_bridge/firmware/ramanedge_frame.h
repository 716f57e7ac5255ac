/* ramanedge framed protocol v1, firmware side (C99, no allocation, no libc beyond string.h).
 *
 * Frame, little-endian: sync A5 5A 52 45 | version u8 = 1 | type u8 | sequence u16 |
 * payload length u32 | payload | CRC-32 (IEEE 802.3, as zlib) of version..payload.
 * Specification: docs/protocol.md. The host decoder is firmware_bridge/framing.py.
 */
#ifndef RAMANEDGE_FRAME_H
#define RAMANEDGE_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define RE_VERSION 1u
#define RE_OVERHEAD 16u            /* sync 4 + header 8 + crc 4 */
#define RE_MAX_PAYLOAD (32u * 1024u)

enum re_type {
    RE_IDENTIFY = 0x01, RE_GET_CALIBRATION = 0x02, RE_SET_INTEGRATION = 0x03, RE_ACQUIRE = 0x04,
    RE_START_STREAM = 0x05, RE_STOP_STREAM = 0x06, RE_ACQUIRE_DARK = 0x07,
    RE_IDENTITY = 0x81, RE_CALIBRATION = 0x82, RE_ACK = 0x83, RE_SPECTRUM = 0x84, RE_ERROR = 0x8F
};

enum re_flags { RE_FLAG_SATURATED = 0x01, RE_FLAG_DARK = 0x02 };

/* CRC-32 (reflected, polynomial 0xEDB88320), continuing from crc (start with 0). */
uint32_t re_crc32(uint32_t crc, const uint8_t *data, size_t len);

/* Write a whole frame into out; returns its length, or 0 if it does not fit in cap or len is over the cap. */
size_t re_frame_encode(uint8_t *out, size_t cap, uint8_t type, uint16_t sequence, const uint8_t *payload, uint32_t len);

/* Spectrum payload with uint16 counts: counter u32, device time us u64, integration us u32,
 * flags u8, sample bytes u8 (= 2), pixel count u16, counts. Returns its length or 0 if cap is too small. */
size_t re_spectrum_payload(uint8_t *out, size_t cap, uint32_t counter, uint64_t time_us, uint32_t integration_us,
                           uint8_t flags, const uint16_t *counts, uint16_t pixels);

/* Identity payload: pixel count u16, then model, serial and firmware as u8-length-prefixed strings. */
size_t re_identity_payload(uint8_t *out, size_t cap, uint16_t pixels, const char *model, const char *serial,
                           const char *firmware);

/* Calibration payload: laser nm f64, coefficient count u8, coefficients f64 (wavelength nm = sum c[i] p^i). */
size_t re_calibration_payload(uint8_t *out, size_t cap, double laser_nm, const double *coefficients, uint8_t n);

#endif
