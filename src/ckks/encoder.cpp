#include "ckks/encoder.h"

#include "ckks/random.h"

#include <cmath>
#include <numbers>

#include "common/error.h"
#include "ring/kernels.h"
#include "ckks/polyops.h"

namespace hecnn::ckks {

namespace {

// Little-endian multi-word helpers for CRT reconstruction.
void mul_word(std::vector<u64>& a, u64 w) {
  u128 carry = 0;
  for (auto& x : a) {
    const u128 t = static_cast<u128>(x) * w + carry;
    x = static_cast<u64>(t);
    carry = t >> 64;
  }
  if (carry) a.push_back(static_cast<u64>(carry));
}

// acc += b * w, acc has room for b.size() + 1 words.
inline void add_mul_word(u64* acc, std::size_t acc_words, const u64* b, std::size_t b_words, u64 w) {
  u128 carry = 0;
  std::size_t i = 0;
  for (; i < b_words; ++i) {
    const u128 t = static_cast<u128>(b[i]) * w + acc[i] + carry;
    acc[i] = static_cast<u64>(t);
    carry = t >> 64;
  }
  for (; carry && i < acc_words; ++i) {
    const u128 t = static_cast<u128>(acc[i]) + carry;
    acc[i] = static_cast<u64>(t);
    carry = t >> 64;
  }
}

inline int compare(const u64* a, const u64* b, std::size_t words) {
  for (std::size_t i = words; i-- > 0;) {
    if (a[i] != b[i]) return a[i] < b[i] ? -1 : 1;
  }
  return 0;
}

// a -= b (a >= b).
inline void sub_words(u64* a, const u64* b, std::size_t words) {
  u64 borrow = 0;
  for (std::size_t i = 0; i < words; ++i) {
    const u64 bi = b[i] + borrow;
    const u64 nb = (bi < borrow) || (a[i] < bi) ? 1 : 0;
    a[i] -= bi;
    borrow = nb;
  }
}

inline double words_to_double(const u64* a, std::size_t words) {
  double r = 0;
  for (std::size_t i = words; i-- > 0;) r = r * 0x1p64 + static_cast<double>(a[i]);
  return r;
}

std::size_t slot_count_for(std::size_t values, std::size_t max_slots) {
  if (values > max_slots) {
    throw Error("cannot encode " + std::to_string(values) + " values: at most " + std::to_string(max_slots) +
                " slots (N/2)");
  }
  std::size_t s = 1;
  while (s < values) s <<= 1;
  return s;
}

}  // namespace

void bit_reverse(std::vector<std::complex<double>>& v) {
  const std::size_t n = v.size();
  for (std::size_t i = 1, j = 0; i < n; ++i) {
    std::size_t bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) std::swap(v[i], v[j]);
  }
}

CkksEncoder::CkksEncoder(ContextPtr ctx) : ctx_(std::move(ctx)) {
  const std::size_t n = ctx_->n(), m = 2 * n;
  roots_.resize(m + 1);
  for (std::size_t j = 0; j <= m; ++j) {
    const double angle = 2.0 * std::numbers::pi * static_cast<double>(j) / static_cast<double>(m);
    roots_[j] = {std::cos(angle), std::sin(angle)};
  }
  rot_group_.resize(n / 2);
  std::size_t g = 1;
  for (std::size_t j = 0; j < n / 2; ++j) {
    rot_group_[j] = g;
    g = (g * 5) % m;
  }
  // The inverse embedding's twiddle of butterfly j in a stage of half-length h (h = 1 .. n/4), at
  // h - 1 + j: it depends on h and j only, not on the slot count.
  inv_twiddles_.resize(n / 2 > 1 ? n / 2 - 1 : 1);
  for (std::size_t h = 1; 2 * h <= n / 2; h <<= 1) {
    const std::size_t lenq = 8 * h, stride = m / lenq;
    for (std::size_t j = 0; j < h; ++j) inv_twiddles_[h - 1 + j] = roots_[(lenq - (rot_group_[j] % lenq)) * stride];
  }
  const std::size_t L = ctx_->chain_size();
  crt_.resize(L);
  for (std::size_t l = 0; l < L; ++l) {
    Crt& c = crt_[l];
    c.q = {1};
    for (std::size_t i = 0; i <= l; ++i) mul_word(c.q, ctx_->modulus(i).value);
    c.q.resize(l + 2, 0);
    c.half_q = c.q;
    for (std::size_t w = 0; w < c.half_q.size(); ++w) {
      c.half_q[w] = (c.half_q[w] >> 1) | (w + 1 < c.half_q.size() ? (c.half_q[w + 1] << 63) : 0);
    }
    for (std::size_t i = 0; i <= l; ++i) {
      std::vector<u64> h{1};
      u64 h_mod = 1;
      const Modulus& qi = ctx_->modulus(i);
      for (std::size_t j = 0; j <= l; ++j) {
        if (j == i) continue;
        mul_word(h, ctx_->modulus(j).value);
        h_mod = qi.mul(h_mod, qi.reduce(ctx_->modulus(j).value));
      }
      h.resize(l + 2, 0);
      c.hat.push_back(std::move(h));
      c.inv_hat.emplace_back(qi.inv(h_mod), qi.value);
    }
  }
}

// Both transforms work on interleaved (re, im) doubles with explicit arithmetic: std::complex's
// operator* carries NaN/infinity recovery branches that keep the loops from vectorizing.
void CkksEncoder::embed_inverse(std::vector<std::complex<double>>& v) const {
  const std::size_t size = v.size();
  double* const d = reinterpret_cast<double*>(v.data());
  for (std::size_t len = size; len >= 2; len >>= 1) {
    const std::size_t lenh = len >> 1;
    // This stage's twiddles, in order (see inv_twiddles_): the butterflies of a block run over
    // contiguous data and twiddles.
    const double* const w = reinterpret_cast<const double*>(inv_twiddles_.data() + (lenh - 1));
    for (std::size_t i = 0; i < size; i += len) {
      double* const x = d + 2 * i;
      double* const y = d + 2 * (i + lenh);
      for (std::size_t j = 0; j < lenh; ++j) {
        const double ur = x[2 * j], ui = x[2 * j + 1], vr = y[2 * j], vi = y[2 * j + 1];
        const double wr = w[2 * j], wi = w[2 * j + 1];
        x[2 * j] = ur + vr;
        x[2 * j + 1] = ui + vi;
        const double tr = ur - vr, ti = ui - vi;
        y[2 * j] = tr * wr - ti * wi;
        y[2 * j + 1] = tr * wi + ti * wr;
      }
    }
  }
  bit_reverse(v);
  const double inv = 1.0 / static_cast<double>(size);
  for (std::size_t i = 0; i < 2 * size; ++i) d[i] *= inv;
}

void CkksEncoder::embed(std::vector<std::complex<double>>& v) const {
  const std::size_t size = v.size(), m = 2 * ctx_->n();
  bit_reverse(v);
  double* const d = reinterpret_cast<double*>(v.data());
  const double* const roots = reinterpret_cast<const double*>(roots_.data());
  for (std::size_t len = 2; len <= size; len <<= 1) {
    const std::size_t lenh = len >> 1, lenq = len << 2, stride = m / lenq;
    for (std::size_t j = 0; j < lenh; ++j) {
      const std::size_t idx = (rot_group_[j] % lenq) * stride;
      const double wr = roots[2 * idx], wi = roots[2 * idx + 1];
      for (std::size_t i = 0; i < size; i += len) {
        double* x = d + 2 * (i + j);
        double* y = d + 2 * (i + j + lenh);
        const double ur = x[0], ui = x[1];
        const double tr = y[0] * wr - y[1] * wi, ti = y[0] * wi + y[1] * wr;
        x[0] = ur + tr;
        x[1] = ui + ti;
        y[0] = ur - tr;
        y[1] = ui - ti;
      }
    }
  }
}

void CkksEncoder::encode(std::span<const std::complex<double>> values, double scale, std::size_t level,
                         Plaintext& out) const {
  encode(values, scale, level, out, {});
}

std::vector<double> CkksEncoder::slot_coeffs(std::span<const std::complex<double>> values, double scale,
                                             std::size_t level, std::size_t& slots) const {
  if (level > ctx_->max_level()) {
    throw Error("encode level " + std::to_string(level) + " exceeds the top level " + std::to_string(ctx_->max_level()));
  }
  if (!(scale >= 1.0) || !std::isfinite(scale)) throw Error("encoding scale must be a finite number >= 1");
  slots = slot_count_for(values.size(), max_slots());
  std::vector<std::complex<double>> v(slots, {0.0, 0.0});
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i].real()) || !std::isfinite(values[i].imag())) {
      throw Error("cannot encode a non-finite value (slot " + std::to_string(i) + ")");
    }
    v[i] = values[i];
  }
  embed_inverse(v);
  std::vector<double> coeffs(2 * slots);
  for (std::size_t i = 0; i < slots; ++i) {
    coeffs[i] = v[i].real();
    coeffs[slots + i] = v[i].imag();
  }
  return coeffs;
}

void CkksEncoder::encode(std::span<const std::complex<double>> values, double scale, std::size_t level, Plaintext& out,
                         std::span<const std::int64_t> noise) const {
  std::size_t slots = 0;
  const std::vector<double> coeffs = slot_coeffs(values, scale, level, slots);
  check_noise(noise);
  out.reset(ctx_->n(), level, slots, scale);
  encode_coeffs(coeffs, slots, scale, level, out.data(), noise);
}

std::size_t CkksEncoder::encode_to(std::span<const double> values, double scale, std::size_t level,
                                   std::span<const std::int64_t> noise, u64* dst) const {
  const std::vector<std::complex<double>> c(values.begin(), values.end());
  std::size_t slots = 0;
  const std::vector<double> coeffs = slot_coeffs(c, scale, level, slots);
  check_noise(noise);
  encode_coeffs(coeffs, slots, scale, level, dst, noise);
  return slots;
}

void CkksEncoder::check_noise(std::span<const std::int64_t> noise) const {
  if (!noise.empty() && noise.size() != ctx_->n()) throw Error("encode: the noise must have one integer per coefficient");
  // Noise below 2^40 in magnitude keeps a sum with a value below 2^62 within 64 bits.
  constexpr std::int64_t kNoiseBound = std::int64_t{1} << 40;
  for (std::int64_t e : noise) {
    if (e >= kNoiseBound || e <= -kNoiseBound) throw Error("encode: noise beyond 2^40");
  }
}

void CkksEncoder::encode(std::span<const double> values, double scale, std::size_t level, Plaintext& out) const {
  encode(values, scale, level, out, {});
}

void CkksEncoder::encode(std::span<const double> values, double scale, std::size_t level, Plaintext& out,
                         std::span<const std::int64_t> noise) const {
  std::vector<std::complex<double>> c(values.begin(), values.end());
  encode(std::span<const std::complex<double>>(c), scale, level, out, noise);
}

Plaintext CkksEncoder::encode(std::span<const double> values, double scale) const {
  Plaintext pt;
  encode(values, scale, ctx_->max_level(), pt);
  return pt;
}

Plaintext CkksEncoder::encode(std::span<const std::complex<double>> values, double scale) const {
  Plaintext pt;
  encode(values, scale, ctx_->max_level(), pt);
  return pt;
}

void CkksEncoder::encode_coeffs(const std::vector<double>& coeffs, std::size_t half, double scale, std::size_t level,
                                u64* dst, std::span<const std::int64_t> noise) const {
  const std::size_t n = ctx_->n(), gap = (n / 2) / half;
  // Scaled, rounded coefficient values; check they fit below Q_level / 2.
  std::vector<double> scaled(coeffs.size());
  double max_abs = 0;
  for (std::size_t i = 0; i < coeffs.size(); ++i) {
    scaled[i] = std::nearbyint(coeffs[i] * scale);
    if (!std::isfinite(scaled[i])) throw Error("encoding overflow: value x scale is not a finite number");
    max_abs = std::max(max_abs, std::fabs(scaled[i]));
  }
  double log_q = 0;
  for (std::size_t i = 0; i <= level; ++i) log_q += std::log2(static_cast<double>(ctx_->modulus(i).value));
  if (max_abs > 0 && std::log2(max_abs) >= log_q - 1.0) {
    throw Error("encoding overflow: value x scale reaches 2^" + std::to_string(static_cast<int>(std::log2(max_abs))) +
                " but the modulus at level " + std::to_string(level) + " has " + std::to_string(static_cast<int>(log_q)) +
                " bits; lower the scale or encode at a higher level");
  }
  const long limbs = static_cast<long>(level + 1);
  if (max_abs < 0x1p62) {
    // Every coefficient as a signed 64-bit integer once (zero in the gaps, plus the noise), then one
    // vectorized reduction and one NTT per prime.
    WipedVector<std::int64_t> ints(n);
    if (noise.empty()) {
      std::fill(ints.begin(), ints.end(), 0);
    } else {
      std::copy(noise.begin(), noise.end(), ints.begin());
    }
    for (std::size_t j = 0; j < half; ++j) {
      ints[j * gap] += static_cast<std::int64_t>(scaled[j]);
      ints[n / 2 + j * gap] += static_cast<std::int64_t>(scaled[half + j]);
    }
#pragma omp parallel for schedule(static) if (limbs > 1)
    for (long i = 0; i < limbs; ++i) {
      const std::size_t ii = static_cast<std::size_t>(i);
      u64* o = dst + ii * n;
      ring::kernels::reduce_signed_mod(ints.data(), o, n, ctx_->modulus(ii));
      ctx_->ntt(ii).forward(o);
    }
    return;
  }
#pragma omp parallel for schedule(static) if (limbs > 1)
  for (long i = 0; i < limbs; ++i) {
    const Modulus& m = ctx_->modulus(static_cast<std::size_t>(i));
    u64* o = dst + static_cast<std::size_t>(i) * n;
    if (noise.empty()) {
      std::fill(o, o + n, u64{0});
    } else {
      ring::kernels::reduce_signed_mod(noise.data(), o, n, m);
    }
    for (std::size_t j = 0; j < half; ++j) {
      o[j * gap] = m.add(o[j * gap], detail::double_to_residue(scaled[j], m));
      o[n / 2 + j * gap] = m.add(o[n / 2 + j * gap], detail::double_to_residue(scaled[half + j], m));
    }
    ctx_->ntt(static_cast<std::size_t>(i)).forward(o);
  }
}

std::vector<std::complex<double>> CkksEncoder::decode_complex(const Plaintext& pt) const {
  const std::size_t n = ctx_->n();
  if (pt.n() != n || pt.level() > ctx_->max_level() || pt.slots() == 0 || pt.slots() > n / 2) {
    throw Error("plaintext does not belong to these parameters");
  }
  const std::size_t slots = pt.slots(), gap = (n / 2) / slots, level = pt.level();
  std::vector<u64> coeff(pt.data(), pt.data() + pt.word_count());
  detail::ntt_inverse(*ctx_, coeff.data(), detail::chain_indices(level));

  std::vector<double> values(2 * slots);
  const Crt& crt = crt_[level];
  const std::size_t words = level + 2;
  // 1/q_i for the estimate of the CRT overflow count (corrected exactly below).
  std::vector<double> inv_q(level + 1);
  for (std::size_t i = 0; i <= level; ++i) inv_q[i] = 1.0 / static_cast<double>(ctx_->modulus(i).value);
  const long count = static_cast<long>(2 * slots);
#pragma omp parallel for schedule(static)
  for (long t = 0; t < count; ++t) {
    const std::size_t idx = (static_cast<std::size_t>(t) < slots) ? static_cast<std::size_t>(t) * gap
                                                                   : n / 2 + (static_cast<std::size_t>(t) - slots) * gap;
    double val;
    if (level == 0) {
      const u64 q = ctx_->modulus(0).value, x = coeff[idx];
      val = x > q / 2 ? -static_cast<double>(q - x) : static_cast<double>(x);
    } else {
      u64 acc[80] = {0};
      double frac = 0;
      for (std::size_t i = 0; i <= level; ++i) {
        const u64 qi = ctx_->modulus(i).value;
        const u64 y = crt.inv_hat[i].apply(coeff[i * n + idx], qi);
        add_mul_word(acc, words, crt.hat[i].data(), words - 1, y);
        frac += static_cast<double>(y) * inv_q[i];
      }
      // acc = x + k*Q with k = floor(frac) up to rounding; subtract all but a safe margin, then fix up.
      std::size_t k = static_cast<std::size_t>(frac);
      k = k > 0 ? k - 1 : 0;
      if (k > 0) {
        u64 kq[80] = {0};
        add_mul_word(kq, words, crt.q.data(), words - 1, static_cast<u64>(k));
        sub_words(acc, kq, words);
      }
      while (compare(acc, crt.q.data(), words) >= 0) sub_words(acc, crt.q.data(), words);
      if (compare(acc, crt.half_q.data(), words) > 0) {
        u64 neg[80];
        std::copy(crt.q.begin(), crt.q.end(), neg);
        sub_words(neg, acc, words);
        val = -words_to_double(neg, words);
      } else {
        val = words_to_double(acc, words);
      }
    }
    values[static_cast<std::size_t>(t)] = val / pt.scale();
  }
  std::vector<std::complex<double>> v(slots);
  for (std::size_t i = 0; i < slots; ++i) v[i] = {values[i], values[slots + i]};
  embed(v);
  return v;
}

std::vector<double> CkksEncoder::decode(const Plaintext& pt) const {
  const auto c = decode_complex(pt);
  std::vector<double> r(c.size());
  for (std::size_t i = 0; i < c.size(); ++i) r[i] = c[i].real();
  return r;
}

}  // namespace hecnn::ckks
