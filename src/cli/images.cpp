#include "cli/images.h"

#include <stb_image.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>

#include "common/error.h"
#include "common/files.h"

namespace hecnn::cli {

namespace {
constexpr std::uint64_t kMaxFileBytes = 64u << 20;
constexpr int kMaxSide = 16384;
}  // namespace

std::vector<float> resize_bilinear(const unsigned char* px, int width, int height, int channels, int h, int w) {
  std::vector<float> out(static_cast<std::size_t>(channels) * static_cast<std::size_t>(h) * static_cast<std::size_t>(w));
  const double sy = static_cast<double>(height) / h, sx = static_cast<double>(width) / w;
  for (int y = 0; y < h; ++y) {
    const double fy = std::clamp((y + 0.5) * sy - 0.5, 0.0, static_cast<double>(height - 1));
    const int y0 = static_cast<int>(fy), y1 = std::min(y0 + 1, height - 1);
    const double ay = fy - y0;
    for (int x = 0; x < w; ++x) {
      const double fx = std::clamp((x + 0.5) * sx - 0.5, 0.0, static_cast<double>(width - 1));
      const int x0 = static_cast<int>(fx), x1 = std::min(x0 + 1, width - 1);
      const double ax = fx - x0;
      for (int c = 0; c < channels; ++c) {
        auto at = [&](int yy, int xx) {
          return static_cast<double>(px[(static_cast<std::size_t>(yy) * width + xx) * channels + c]);
        };
        const double v = (1 - ay) * ((1 - ax) * at(y0, x0) + ax * at(y0, x1)) + ay * ((1 - ax) * at(y1, x0) + ax * at(y1, x1));
        out[(static_cast<std::size_t>(c) * h + y) * w + x] = static_cast<float>(v / 255.0);
      }
    }
  }
  return out;
}

std::vector<float> read_image(const std::string& path, const nn::Shape& shape) {
  if (shape.c != 1 && shape.c != 3) {
    throw Error("the model takes " + std::to_string(shape.c) + "-channel inputs; image files give 1 (grayscale) or 3 (RGB)");
  }
  if (regular_file_size(path, "image") > kMaxFileBytes) throw Error(path + ": larger than 64 MiB");
  int width = 0, height = 0, channels = 0;
  if (!stbi_info(path.c_str(), &width, &height, &channels)) {
    throw Error(path + ": not a PNG, JPEG or PGM/PPM image (" + std::string(stbi_failure_reason()) + ")");
  }
  if (width <= 0 || height <= 0 || width > kMaxSide || height > kMaxSide) {
    throw Error(path + ": " + std::to_string(width) + " x " + std::to_string(height) + " pixels: too large (at most " +
                std::to_string(kMaxSide) + " a side)");
  }
  // stb converts to the channels asked for (grayscale: ITU-R BT.601 luma).
  std::unique_ptr<unsigned char, void (*)(void*)> px(stbi_load(path.c_str(), &width, &height, &channels, shape.c), stbi_image_free);
  if (!px) throw Error(path + ": cannot decode (" + std::string(stbi_failure_reason()) + ")");
  return resize_bilinear(px.get(), width, height, shape.c, shape.h, shape.w);
}

}  // namespace hecnn::cli
