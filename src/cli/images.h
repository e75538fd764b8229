#pragma once
// The user's own images for classification: PNG, JPEG and PGM/PPM files (decoded by stb_image,
// Debian's libstb), converted to the model's channels (1: grayscale, 3: RGB), resized bilinearly
// to its height and width, pixels / 255, in CHW order like the datasets (nn/dataset.h).
#include <string>
#include <vector>

#include "nn/model.h"

namespace hecnn::cli {

// Throws hecnn::Error on an unreadable, malformed or absurdly large file (more than 64 MiB, or
// more than 16384 pixels a side), and for a shape of other than 1 or 3 channels.
std::vector<float> read_image(const std::string& path, const nn::Shape& shape);

// Bilinear resize of one HWC 8-bit image to h x w (pixel centres aligned, edges clamped), as
// floats / 255 in CHW order.
std::vector<float> resize_bilinear(const unsigned char* pixels, int width, int height, int channels, int h, int w);

}  // namespace hecnn::cli
