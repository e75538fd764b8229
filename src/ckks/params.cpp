#include "ckks/params.h"

#include <sodium.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <sstream>

#include "common/error.h"
#include "ring/primes.h"

namespace hecnn::ckks {

int security_bound_bits(std::size_t n) {
  switch (n) {
    case 1024: return 27;
    case 2048: return 54;
    case 4096: return 109;
    case 8192: return 218;
    case 16384: return 438;
    case 32768: return 881;
    case 65536: return 1772;
    default: return 0;
  }
}

namespace {

int product_bit_length(const std::vector<std::uint64_t>& primes) {
  // Exact multi-word product.
  std::vector<std::uint64_t> acc{1};
  for (std::uint64_t p : primes) {
    unsigned __int128 carry = 0;
    for (auto& w : acc) {
      unsigned __int128 t = static_cast<unsigned __int128>(w) * p + carry;
      w = static_cast<std::uint64_t>(t);
      carry = t >> 64;
    }
    if (carry) acc.push_back(static_cast<std::uint64_t>(carry));
  }
  return static_cast<int>(64 * (acc.size() - 1)) + (64 - __builtin_clzll(acc.back()));
}

double log2_product(const std::vector<std::uint64_t>& primes, std::size_t begin, std::size_t end) {
  double s = 0;
  for (std::size_t i = begin; i < end; ++i) s += std::log2(static_cast<double>(primes[i]));
  return s;
}

void check_ring_degree(std::size_t n) {
  if (n < 1024 || n > 65536 || (n & (n - 1)) != 0) {
    throw Error("ring degree must be a power of two between 1024 and 65536, got " + std::to_string(n));
  }
}

struct Preset {
  std::size_t n;
  std::vector<int> q_bits, p_bits;
  const char* what;
};

const std::map<std::string, Preset>& presets() {
  static const std::map<std::string, Preset> table = {
      {"seal-n8192", {8192, {43, 43, 44, 44}, {44}, "SEAL's default 128-bit chain for N=8192 (218 bits), 3 levels"}},
      {"seal-n16384",
       {16384, {48, 48, 48, 49, 49, 49, 49, 49}, {49}, "SEAL's default 128-bit chain for N=16384 (438 bits), 7 levels"}},
      {"n16384-l7",
       {16384, {50, 40, 40, 40, 40, 40, 40, 40}, {60}, "N=16384, 50-bit base + 7 levels of 40 bits (scale 2^40)"}},
      {"n32768-l10",
       {32768, {50, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40}, {60}, "N=32768, 50-bit base + 10 levels of 40 bits (scale 2^40)"}},
      {"boot-n65536",
       {65536, {50, 40, 40, 40, 40, 40, 40, 40, 40, 40, 42, 42, 42, 60, 60, 60, 60, 60, 60, 60, 60, 60, 56, 56, 56},
        {60, 60, 60, 60, 60, 60, 60, 60},
        "N=65536 for bootstrapping (circuits/bootstrap.h, hecnn demo --bootstrap): 10 levels at scale 2^40 left after a "
        "bootstrap, which takes 14 (CoeffsToSlots 3, EvalMod 8, SlotsToCoeffs 3); 128-bit, uniform ternary secret"}},
      {"n32768-l16",
       {32768, {60, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40}, {60, 60},
        "N=32768, 60-bit base + 16 levels of 40 bits, 2 special primes"}},
  };
  return table;
}

}  // namespace

CkksParameters CkksParameters::from_bit_sizes(std::size_t n, const std::vector<int>& q_bits,
                                              const std::vector<int>& p_bits, const ParameterOptions& opts) {
  check_ring_degree(n);  // before prime search, which depends on n; from_primes checks the rest
  // Group requests by bit size so each size gets distinct primes, largest first.
  std::vector<std::uint64_t> used;
  auto take = [&](int bits) {
    auto p = ring::ntt_primes(bits, n, 1, used);
    used.push_back(p[0]);
    return p[0];
  };
  std::vector<std::uint64_t> q, p;
  for (int b : q_bits) q.push_back(take(b));
  for (int b : p_bits) p.push_back(take(b));
  return from_primes(n, std::move(q), std::move(p), opts);
}

CkksParameters CkksParameters::from_primes(std::size_t n, std::vector<std::uint64_t> q, std::vector<std::uint64_t> p,
                                           const ParameterOptions& opts) {
  check_ring_degree(n);
  if (q.empty()) throw Error("the modulus chain needs at least one prime");
  if (p.empty()) throw Error("key switching needs at least one special prime");
  if (q.size() > 64 || p.size() > 16) throw Error("too many primes in the modulus chain");
  std::set<std::uint64_t> seen;
  for (const auto* list : {&q, &p}) {
    for (std::uint64_t x : *list) {
      if (x < 2 || x >= (1ULL << 60)) throw Error("primes must be at most 60 bits");
      if (!ring::is_prime(x)) throw Error(std::to_string(x) + " is not prime");
      if ((x - 1) % (2 * n) != 0) throw Error(std::to_string(x) + " is not congruent to 1 mod 2N (not NTT-friendly)");
      if (!seen.insert(x).second) throw Error("prime " + std::to_string(x) + " appears twice in the chain");
    }
  }
  CkksParameters prm;
  prm.n_ = n;
  prm.q_ = std::move(q);
  prm.p_ = std::move(p);
  std::vector<std::uint64_t> all = prm.q_;
  all.insert(all.end(), prm.p_.begin(), prm.p_.end());
  prm.total_bits_ = product_bit_length(all);
  prm.insecure_ = opts.allow_insecure;
  const int bound = security_bound_bits(n);
  if (!opts.allow_insecure && prm.total_bits_ > bound) {
    throw Error("log2(Q*P) = " + std::to_string(prm.total_bits_) + " bits exceeds the 128-bit security bound of " +
                std::to_string(bound) + " bits for N=" + std::to_string(n) +
                " (HomomorphicEncryption.org standard, ternary secret); use fewer or smaller primes, a larger N, "
                "or allow_insecure for tests");
  }
  const std::size_t L = prm.q_.size();
  const double log_p = log2_product(prm.p_, 0, prm.p_.size());
  if (opts.digits == 0) {
    // Largest alpha such that every digit of alpha consecutive primes stays below P.
    std::size_t alpha = 1;
    for (std::size_t a = 2; a <= L; ++a) {
      double worst = 0;
      for (std::size_t j = 0; j < L; j += a) worst = std::max(worst, log2_product(prm.q_, j, std::min(L, j + a)));
      if (worst <= log_p + 0.5) alpha = a; else break;
    }
    prm.digits_ = (L + alpha - 1) / alpha;
    // Normalize so that alpha is a function of the digit count alone (what files store).
    prm.alpha_ = (L + prm.digits_ - 1) / prm.digits_;
  } else {
    if (opts.digits > L) {
      throw Error("number of key-switching digits (" + std::to_string(opts.digits) +
                  ") exceeds the number of chain primes (" + std::to_string(L) + ")");
    }
    prm.alpha_ = (L + opts.digits - 1) / opts.digits;
    prm.digits_ = (L + prm.alpha_ - 1) / prm.alpha_;
  }
  double worst_digit = 0;
  for (std::size_t j = 0; j < L; j += prm.alpha_) {
    worst_digit = std::max(worst_digit, log2_product(prm.q_, j, std::min(L, j + prm.alpha_)));
  }
  if (worst_digit > log_p + 1.5) {
    std::ostringstream os;
    os << "special primes (" << std::lround(log_p) << " bits) are too small for key-switching digits of "
       << std::lround(worst_digit) << " bits: add special primes or increase the number of digits";
    throw Error(os.str());
  }
  // Identifier over everything that changes the meaning of keys and ciphertexts.
  if (sodium_init() < 0) throw Error("libsodium failed to initialize");
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, 8);
  const std::uint64_t header[5] = {static_cast<std::uint64_t>(n), L, prm.p_.size(), prm.digits_, prm.alpha_};
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(header), sizeof(header));
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(all.data()), all.size() * 8);
  unsigned char out[8];
  crypto_generichash_final(&st, out, 8);
  std::memcpy(&prm.id_, out, 8);
  return prm;
}

CkksParameters CkksParameters::preset(const std::string& name) { return preset_at(name, 0, {}); }

CkksParameters CkksParameters::preset_at(const std::string& name, std::size_t n, const ParameterOptions& opts) {
  auto it = presets().find(name);
  if (it == presets().end()) {
    std::string names;
    for (const auto& [k, v] : presets()) names += (names.empty() ? "" : ", ") + k;
    throw Error("unknown parameter preset '" + name + "'; available: " + names);
  }
  return from_bit_sizes(n == 0 ? it->second.n : n, it->second.q_bits, it->second.p_bits, opts);
}

std::vector<std::string> CkksParameters::preset_names() {
  std::vector<std::string> out;
  for (const auto& [k, v] : presets()) out.push_back(k);
  return out;
}

std::string CkksParameters::preset_description(const std::string& name) {
  auto it = presets().find(name);
  return it == presets().end() ? std::string() : it->second.what;
}

std::string CkksParameters::describe() const {
  std::ostringstream os;
  os << "N=" << n_ << ", slots=" << n_ / 2 << ", levels=" << max_level() << ", primes q=[";
  for (std::size_t i = 0; i < q_.size(); ++i) os << (i ? "," : "") << (64 - __builtin_clzll(q_[i]));
  os << "] bits, special p=[";
  for (std::size_t i = 0; i < p_.size(); ++i) os << (i ? "," : "") << (64 - __builtin_clzll(p_[i]));
  os << "] bits, log2(QP)=" << total_bits_ << " (bound " << security_bound_bits(n_) << ")"
     << ", digits=" << digits_ << (insecure_ ? ", INSECURE" : "");
  return os.str();
}

}  // namespace hecnn::ckks
