#include "circuits/linear_transform.h"

#include <algorithm>
#include <map>
#include <set>

#include "common/error.h"
#include "common/parallel.h"

namespace hecnn::circuits {

using ckks::Ciphertext;
using ckks::Plaintext;

void LtShape::finalize() {
  baby.assign(inputs, {});
  for (const auto& g : giants) {
    if (g.out >= outputs) throw Error("linear transform: a giant step writes output " + std::to_string(g.out) + " of " + std::to_string(outputs));
    for (const auto& t : g.terms) {
      if (t.in >= inputs) throw Error("linear transform: a product reads input " + std::to_string(t.in) + " of " + std::to_string(inputs));
      if (t.baby != 0) baby[t.in].push_back(t.baby);
    }
  }
  for (auto& b : baby) {
    std::sort(b.begin(), b.end());
    b.erase(std::unique(b.begin(), b.end()), b.end());
  }
}

std::size_t LtShape::products() const {
  std::size_t n = 0;
  for (const auto& g : giants) n += g.terms.size();
  return n;
}

std::vector<int> LtShape::rotation_steps() const {
  std::set<int> s;
  for (const auto& b : baby) s.insert(b.begin(), b.end());
  for (const auto& g : giants)
    if (g.step != 0) s.insert(g.step);
  return {s.begin(), s.end()};
}

std::size_t LtShape::rotations() const {
  std::size_t n = 0;
  for (const auto& b : baby) n += b.size();
  for (const auto& g : giants) n += g.step != 0;
  return n;
}

std::vector<Ciphertext> apply(const ckks::Evaluator& ev, const ckks::GaloisKeys& gk, std::vector<Ciphertext>& in,
                              const LtShape& shape, const LtPlaintexts& pts) {
  if (in.size() != shape.inputs) {
    throw Error("linear transform: " + std::to_string(in.size()) + " inputs given, " + std::to_string(shape.inputs) + " expected");
  }
  if (shape.baby.size() != shape.inputs) throw Error("linear transform: shape not finalized (internal error)");
  if (!pts.stored && !pts.encode) throw Error("linear transform: no plaintexts (internal error)");
  if (pts.stored && pts.stored->size() != shape.giants.size()) throw Error("linear transform: plaintexts of another shape (internal error)");
  // Baby steps: every rotation of an input from one decomposition.
  std::vector<std::vector<Ciphertext>> rotated(in.size());
  for (std::size_t a = 0; a < in.size(); ++a) {
    if (!shape.baby[a].empty()) ev.rotate_hoisted(in[a], shape.baby[a], gk, rotated[a]);
  }
  const auto source = [&](const LtTerm& t) -> const Ciphertext& {
    if (t.baby == 0) return in[t.in];
    const auto& steps = shape.baby[t.in];
    const auto it = std::lower_bound(steps.begin(), steps.end(), t.baby);
    return rotated[t.in][static_cast<std::size_t>(it - steps.begin())];
  };
  // Giant steps: the plaintext products summed (all sums in one pass over the coefficients), then
  // one rotation each.
  const std::size_t G = shape.giants.size();
  std::vector<Ciphertext> parts(G);
  for (std::size_t g0 = 0; g0 < G;) {
    std::size_t g1 = g0, bytes = 0;
    if (pts.stored) {
      g1 = G;
    } else {
      while (g1 < G && (g1 == g0 || bytes + shape.giants[g1].terms.size() * pts.plaintext_bytes <= pts.batch_bytes)) {
        bytes += shape.giants[g1].terms.size() * pts.plaintext_bytes;
        ++g1;
      }
    }
    const std::vector<std::vector<Plaintext>> fresh = pts.stored ? std::vector<std::vector<Plaintext>>{} : pts.encode(g0, g1);
    if (!pts.stored && fresh.size() != g1 - g0) throw Error("linear transform: plaintexts of another shape (internal error)");
    std::vector<std::vector<ckks::Evaluator::PlainProduct>> terms(g1 - g0);
    for (std::size_t g = g0; g < g1; ++g) {
      const auto& giant = shape.giants[g];
      const auto& p = pts.stored ? (*pts.stored)[g] : fresh[g - g0];
      if (p.size() != giant.terms.size()) throw Error("linear transform: plaintexts of another shape (internal error)");
      for (std::size_t d = 0; d < giant.terms.size(); ++d) terms[g - g0].push_back({&source(giant.terms[d]), &p[d]});
    }
    std::vector<Ciphertext> sums;
    ev.multiply_plain_sums(terms, sums);
    for (std::size_t g = g0; g < g1; ++g) parts[g] = std::move(sums[g - g0]);
    g0 = g1;
  }
  rotated.clear();
  in.clear();
  ParallelErrors errors;
#pragma omp parallel for schedule(dynamic, 1)
  for (std::size_t g = 0; g < G; ++g) errors.run([&] {
    if (shape.giants[g].step != 0) ev.rotate_inplace(parts[g], shape.giants[g].step, gk);
  });
  errors.rethrow();
  std::vector<Ciphertext> out(shape.outputs);
  for (std::size_t g = 0; g < G; ++g) {
    Ciphertext& o = out[shape.giants[g].out];
    if (o.word_count() == 0) {
      o = std::move(parts[g]);
    } else {
      ev.add_inplace(o, parts[g]);
    }
    parts[g] = Ciphertext();
  }
  // An output no term reaches (a map whose weights into it are all zero, such as ResNet's zero-padded
  // shortcut channels) is an exact zero at the others' level and scale (x - x).
  const Ciphertext* filled = nullptr;
  for (const auto& c : out)
    if (c.word_count() != 0) filled = &c;
  for (auto& c : out) {
    if (c.word_count() == 0 && filled) {
      c = *filled;
      ev.sub_inplace(c, *filled);
    }
  }
  for (std::size_t o = 0; o < out.size(); ++o) {
    if (out[o].word_count() == 0) throw Error("linear transform: output " + std::to_string(o) + " is left empty");
  }
  return out;
}

LtShape bsgs_shape(const std::vector<long>& offsets, std::size_t slots, std::size_t baby_size, double baby_cost) {
  if (slots == 0 || (slots & (slots - 1)) != 0) throw Error("linear transform: the slot count must be a power of two");
  if (offsets.empty()) throw Error("linear transform: no diagonals");
  const long n = static_cast<long>(slots);
  std::vector<long> norm;
  for (long d : offsets) norm.push_back(((d % n) + n) % n);
  auto cost_of = [&](long bs) {
    std::set<long> baby, giant;
    for (long d : norm) {
      baby.insert(d % bs);
      giant.insert(d - d % bs);
    }
    return baby_cost * static_cast<double>(baby.size() - baby.count(0)) + static_cast<double>(giant.size() - giant.count(0));
  };
  long bs = static_cast<long>(baby_size);
  if (bs == 0) {
    double best = -1;
    for (long b = 1; b <= n; b *= 2) {
      const double c = cost_of(b);
      if (best < 0 || c < best) {
        best = c;
        bs = b;
      }
    }
  }
  if (bs <= 0 || bs > n) throw Error("linear transform: baby-step size out of range");
  LtShape shape;
  std::map<long, std::size_t> index;
  for (long d : norm) {
    const long b = d % bs, g = d - b;
    auto [it, fresh] = index.insert({g, shape.giants.size()});
    if (fresh) shape.giants.push_back(LtGiant{0, static_cast<int>(g), {}});
    shape.giants[it->second].terms.push_back(LtTerm{0, static_cast<int>(b)});
  }
  std::sort(shape.giants.begin(), shape.giants.end(), [](const LtGiant& a, const LtGiant& b) { return a.step < b.step; });
  shape.finalize();
  return shape;
}

}  // namespace hecnn::circuits
