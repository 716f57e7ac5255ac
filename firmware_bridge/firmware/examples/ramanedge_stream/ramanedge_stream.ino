// Arduino-style example: stream spectra in ramanedge's framed protocol and answer its commands.
// Copy ramanedge_frame.h/.c next to this sketch. read_detector() stands for your CCD driver.
#include "ramanedge_frame.h"

#define PIXELS 2048
static uint16_t counts[PIXELS];
static uint8_t payload[20 + 2 * PIXELS];
static uint8_t frame[sizeof payload + RE_OVERHEAD];
static uint16_t sequence = 0;
static uint32_t counter = 0, integration_us = 100000;
static bool streaming = false;

static void read_detector(uint16_t *out, bool dark) {  // replace with the sensor's readout
  for (int i = 0; i < PIXELS; i++) out[i] = dark ? 600 : 600 + (i % 97) * 10;
}

static void send(uint8_t type, const uint8_t *data, size_t len) {
  size_t n = re_frame_encode(frame, sizeof frame, type, sequence++, data, (uint32_t)len);
  Serial.write(frame, n);
}

static void send_spectrum(bool dark) {
  read_detector(counts, dark);
  uint8_t flags = dark ? RE_FLAG_DARK : 0;
  for (int i = 0; i < PIXELS; i++) if (counts[i] == 65535) flags |= RE_FLAG_SATURATED;
  size_t n = re_spectrum_payload(payload, sizeof payload, ++counter, (uint64_t)micros(), integration_us, flags, counts, PIXELS);
  send(RE_SPECTRUM, payload, n);
}

void setup() { Serial.begin(921600); }

void loop() {
  // Commands are 16-byte frames with no payload (or 4 bytes for SET_INTEGRATION); a real
  // firmware should resynchronise on the sync word like firmware_bridge/framing.py does.
  if (Serial.available() >= (int)RE_OVERHEAD) {
    uint8_t cmd[RE_OVERHEAD + 4];
    size_t n = Serial.readBytes(cmd, RE_OVERHEAD);
    uint8_t type = cmd[5];
    uint8_t ack = type;
    if (n == RE_OVERHEAD && type == RE_SET_INTEGRATION) {
      Serial.readBytes(cmd + RE_OVERHEAD, 4);
      integration_us = cmd[12] | (cmd[13] << 8) | ((uint32_t)cmd[14] << 16) | ((uint32_t)cmd[15] << 24);
      send(RE_ACK, &ack, 1);
    } else if (type == RE_IDENTIFY) {
      send(RE_IDENTITY, payload, re_identity_payload(payload, sizeof payload, PIXELS, "DIY Raman 785", "0001", "1.0"));
    } else if (type == RE_GET_CALIBRATION) {
      const double c[4] = {780.0, 0.0785, -2.5e-6, 0.0};
      send(RE_CALIBRATION, payload, re_calibration_payload(payload, sizeof payload, 785.0, c, 4));
    } else if (type == RE_ACQUIRE || type == RE_ACQUIRE_DARK) {
      send_spectrum(type == RE_ACQUIRE_DARK);
    } else if (type == RE_START_STREAM || type == RE_STOP_STREAM) {
      streaming = type == RE_START_STREAM;
      send(RE_ACK, &ack, 1);
    }
  }
  if (streaming) send_spectrum(false);
}
