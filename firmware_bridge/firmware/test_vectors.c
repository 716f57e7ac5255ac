/* Host program for the shared test vectors: prints one hex-encoded frame per line.
 * tests/test_firmware_c.py compiles it with the system C compiler and decodes every line in Python. */
#include <stdio.h>

#include "ramanedge_frame.h"

static uint8_t payload[RE_MAX_PAYLOAD], frame[RE_MAX_PAYLOAD + RE_OVERHEAD];

static void emit(uint8_t type, uint16_t seq, size_t len) {
    size_t n = re_frame_encode(frame, sizeof frame, type, seq, payload, (uint32_t)len);
    for (size_t i = 0; i < n; i++) printf("%02x", frame[i]);
    printf("\n");
}

int main(void) {
    static uint16_t counts[2048];
    for (int i = 0; i < 2048; i++) counts[i] = (uint16_t)((i * 7) % 65535);
    emit(RE_SPECTRUM, 1, re_spectrum_payload(payload, sizeof payload, 42, 123456789ull, 100000, RE_FLAG_SATURATED, counts, 2048));
    emit(RE_SPECTRUM, 2, re_spectrum_payload(payload, sizeof payload, 43, 0, 5000, RE_FLAG_DARK, counts, 16));
    emit(RE_IDENTITY, 3, re_identity_payload(payload, sizeof payload, 2048, "Raman-785", "SN0042", "fw 1.0"));
    const double coefficients[4] = {780.0, 0.0785, -2.5e-6, 0.0};
    emit(RE_CALIBRATION, 4, re_calibration_payload(payload, sizeof payload, 785.0, coefficients, 4));
    emit(RE_ACK, 65535, 0);
    /* refusals: a payload over the cap and a buffer too small must both give 0 */
    printf("%zu %zu\n", re_frame_encode(frame, sizeof frame, RE_ACK, 0, payload, RE_MAX_PAYLOAD + 1),
           re_frame_encode(frame, 10, RE_ACK, 0, payload, 0));
    return 0;
}
