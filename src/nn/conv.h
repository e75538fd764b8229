#pragma once
// Convolution and pooling geometry shared by the plaintext forward pass and the encrypted compiler,
// so both read the same taps: "same" padding follows TensorFlow (out = ceil(in / stride), the extra
// padding row/column at the bottom/right), which Keras models and hecnn-trained models use;
// explicit padding adds the layer's pad_* rows and columns of zeros (PyTorch, ONNX).
#include <algorithm>
#include <cstddef>

#include "nn/model.h"

namespace hecnn::nn {

inline int conv_pad_before(int in, int out, int k, int s, Padding p) {
  return p == Padding::Same ? std::max((out - 1) * s + k - in, 0) / 2 : 0;
}

// Output size along one axis of a window of k every s over `in` values with `before` and `after`
// zeros added (Same computes its own); 0 when the window does not fit.
inline int window_out(int in, int k, int s, Padding p, int before, int after) {
  if (p == Padding::Same) return (in + s - 1) / s;
  if (p == Padding::Valid) before = after = 0;
  const int padded = in + before + after;
  return padded >= k ? (padded - k) / s + 1 : 0;
}

// The zeros before the first row and column of layer l's window (conv or pooling) for an input of
// shape `in` and output `out`.
inline int pad_rows_before(const Layer& l, const Shape& in, const Shape& out, int k, int s) {
  return l.padding == Padding::Explicit ? l.pad_top : conv_pad_before(in.h, out.h, k, s, l.padding);
}
inline int pad_cols_before(const Layer& l, const Shape& in, const Shape& out, int k, int s) {
  return l.padding == Padding::Explicit ? l.pad_left : conv_pad_before(in.w, out.w, k, s, l.padding);
}

// Calls f(output index, input index, weight index) for every tap of convolution `l` over an input
// of shape `in` producing `out` (CHW indices; weight index into [filters, in.c, kh, kw]).
template <typename F>
void for_each_conv_tap(const Layer& l, const Shape& in, const Shape& out, F&& f) {
  const int ph = pad_rows_before(l, in, out, l.kernel_h, l.stride_h);
  const int pw = pad_cols_before(l, in, out, l.kernel_w, l.stride_w);
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

// Calls f(output index, input index) for every input cell of average pooling `l`'s windows (CHW
// indices, output by output, row-major within a window; padded cells are skipped), and
// g(output index, cells) with the window's divisor: the pool's area, or with count_include_pad
// false the cells inside the image.
template <typename F, typename G>
void for_each_pool_tap(const Layer& l, const Shape& in, const Shape& out, F&& f, G&& g) {
  const int ph = pad_rows_before(l, in, out, l.pool, l.pool_stride);
  const int pw = pad_cols_before(l, in, out, l.pool, l.pool_stride);
  for (int c = 0; c < out.c; ++c) {
    for (int oy = 0; oy < out.h; ++oy) {
      for (int ox = 0; ox < out.w; ++ox) {
        const std::size_t o = (static_cast<std::size_t>(c) * out.h + oy) * out.w + ox;
        int cells = 0;
        for (int ky = 0; ky < l.pool; ++ky) {
          const int iy = oy * l.pool_stride + ky - ph;
          if (iy < 0 || iy >= in.h) continue;
          for (int kx = 0; kx < l.pool; ++kx) {
            const int ix = ox * l.pool_stride + kx - pw;
            if (ix < 0 || ix >= in.w) continue;
            ++cells;
            f(o, (static_cast<std::size_t>(c) * in.h + iy) * in.w + ix);
          }
        }
        g(o, l.count_include_pad ? l.pool * l.pool : cells);
      }
    }
  }
}

}  // namespace hecnn::nn
