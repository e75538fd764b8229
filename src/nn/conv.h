#pragma once
// Convolution geometry shared by the plaintext forward pass and the encrypted compiler, so both
// read the same taps: "same" padding follows TensorFlow (out = ceil(in / stride), the extra
// padding row/column at the bottom/right), which Keras models and hecnn-trained models use.
#include <algorithm>
#include <cstddef>

#include "nn/model.h"

namespace hecnn::nn {

inline int conv_pad_before(int in, int out, int k, int s, Padding p) {
  return p == Padding::Same ? std::max((out - 1) * s + k - in, 0) / 2 : 0;
}

// Calls f(output index, input index, weight index) for every tap of convolution `l` over an input
// of shape `in` producing `out` (CHW indices; weight index into [filters, in.c, kh, kw]).
template <typename F>
void for_each_conv_tap(const Layer& l, const Shape& in, const Shape& out, F&& f) {
  const int ph = conv_pad_before(in.h, out.h, l.kernel_h, l.stride_h, l.padding);
  const int pw = conv_pad_before(in.w, out.w, l.kernel_w, l.stride_w, l.padding);
  for (int fi = 0; fi < out.c; ++fi) {
    for (int oy = 0; oy < out.h; ++oy) {
      for (int ox = 0; ox < out.w; ++ox) {
        const std::size_t o = (static_cast<std::size_t>(fi) * out.h + oy) * out.w + ox;
        for (int c = 0; c < in.c; ++c) {
          for (int ky = 0; ky < l.kernel_h; ++ky) {
            const int iy = oy * l.stride_h + ky - ph;
            if (iy < 0 || iy >= in.h) continue;
            for (int kx = 0; kx < l.kernel_w; ++kx) {
              const int ix = ox * l.stride_w + kx - pw;
              if (ix < 0 || ix >= in.w) continue;
              f(o, (static_cast<std::size_t>(c) * in.h + iy) * in.w + ix,
                ((static_cast<std::size_t>(fi) * in.c + c) * l.kernel_h + ky) * l.kernel_w + kx);
            }
          }
        }
      }
    }
  }
}

}  // namespace hecnn::nn
