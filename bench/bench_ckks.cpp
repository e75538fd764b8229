// CKKS primitive timings with SEAL's default 128-bit chains, ciphertexts at the top level.
// Single-threaded by default (HECNN_BENCH_THREADS overrides), like SEAL's sealbench; the *Threads
// benchmarks take the thread count as their second argument. HECNN_SIMD selects the vector level
// (reported in the context as hecnn_simd).
#include <benchmark/benchmark.h>

#include <cmath>
#include <complex>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>

#include "circuits/bootstrap.h"
#include "ckks/ckks.h"

using namespace hecnn::ckks;

namespace {

struct BenchEnv {
  ContextPtr ctx;
  std::unique_ptr<KeyGenerator> keygen;
  PublicKey pk;
  RelinKeys rk;
  GaloisKeys gk;
  std::unique_ptr<CkksEncoder> encoder;
  std::unique_ptr<Encryptor> enc_pk, enc_sk;
  std::unique_ptr<Decryptor> dec;
  std::unique_ptr<Evaluator> ev;
  std::vector<double> values;
  Plaintext pt;
  Ciphertext ct1, ct2;
  double scale = 0;

  explicit BenchEnv(const std::string& preset) {
    ctx = CkksContext::create(CkksParameters::preset(preset));
    keygen = std::make_unique<KeyGenerator>(ctx);
    pk = keygen->create_public_key();
    rk = keygen->create_relin_keys();
    gk = keygen->create_galois_keys({1, 2, 3, 4, 5, 6, 7, 8}, false);
    encoder = std::make_unique<CkksEncoder>(ctx);
    enc_pk = std::make_unique<Encryptor>(ctx, pk);
    enc_sk = std::make_unique<Encryptor>(ctx, keygen->secret_key());
    dec = std::make_unique<Decryptor>(ctx, keygen->secret_key());
    ev = std::make_unique<Evaluator>(ctx);
    // SEAL's sealbench encodes at scale sqrt(q_last-ish); a 2^40 scale fits both chains.
    scale = 0x1p40;
    std::mt19937_64 rng(1);
    std::uniform_real_distribution<double> d(-1, 1);
    values.resize(encoder->max_slots());
    for (auto& v : values) v = d(rng);
    pt = encoder->encode(values, scale);
    ct1 = enc_pk->encrypt(pt);
    ct2 = enc_pk->encrypt(pt);
  }
};

BenchEnv& env(std::size_t n) {
  static std::map<std::size_t, std::unique_ptr<BenchEnv>> envs;
  auto& e = envs[n];
  if (!e) e = std::make_unique<BenchEnv>(n == 8192 ? "seal-n8192" : "seal-n16384");
  return *e;
}

// Sets the thread count and returns the environment for the benchmark's ring degree.
BenchEnv& bench_env(const benchmark::State& state) {
  const char* t = std::getenv("HECNN_BENCH_THREADS");
  hecnn::set_num_threads(t ? std::atoi(t) : 1);
  return env(static_cast<std::size_t>(state.range(0)));
}

// Times `op` on a fresh copy of `source` each iteration (the copy is not timed).
template <typename Op>
void time_in_place(benchmark::State& state, const Ciphertext& source, const Op& op) {
  Ciphertext c;
  for (auto _ : state) {
    state.PauseTiming();
    c = source;
    state.ResumeTiming();
    op(c);
  }
}

#define HECNN_BENCH(name)                                      \
  void name(benchmark::State& state);                          \
  BENCHMARK(name)->Arg(8192)->Arg(16384)->Unit(benchmark::kMicrosecond); \
  void name(benchmark::State& state)

HECNN_BENCH(EncodeDouble) {
  BenchEnv& e = bench_env(state);
  Plaintext p;
  for (auto _ : state) e.encoder->encode(e.values, e.scale, e.ctx->max_level(), p);
}

HECNN_BENCH(DecodeDouble) {
  BenchEnv& e = bench_env(state);
  for (auto _ : state) benchmark::DoNotOptimize(e.encoder->decode(e.pt));
}

HECNN_BENCH(EncryptPublic) {
  BenchEnv& e = bench_env(state);
  Ciphertext c;
  for (auto _ : state) e.enc_pk->encrypt(e.pt, c);
}

HECNN_BENCH(EncryptSecret) {
  BenchEnv& e = bench_env(state);
  Ciphertext c;
  for (auto _ : state) e.enc_sk->encrypt(e.pt, c);
}

HECNN_BENCH(Decrypt) {
  BenchEnv& e = bench_env(state);
  Plaintext p;
  for (auto _ : state) e.dec->decrypt(e.ct1, p);
}

HECNN_BENCH(AddCt) {
  BenchEnv& e = bench_env(state);
  Ciphertext c = e.ct1;
  for (auto _ : state) e.ev->add_inplace(c, e.ct2);
}

HECNN_BENCH(MulPt) {
  BenchEnv& e = bench_env(state);
  time_in_place(state, e.ct1, [&](Ciphertext& c) { e.ev->multiply_plain_inplace(c, e.pt); });
}

// Into a reused output, like sealbench's multiply(ct0, ct1, ct2).
HECNN_BENCH(MulCt) {
  BenchEnv& e = bench_env(state);
  Ciphertext c;
  for (auto _ : state) e.ev->multiply(e.ct1, e.ct2, c);
}

HECNN_BENCH(Square) {
  BenchEnv& e = bench_env(state);
  time_in_place(state, e.ct1, [&](Ciphertext& c) { e.ev->square_inplace(c); });
}

HECNN_BENCH(RelinInplace) {
  BenchEnv& e = bench_env(state);
  const Ciphertext three = e.ev->multiply(e.ct1, e.ct2);
  time_in_place(state, three, [&](Ciphertext& c) { e.ev->relinearize_inplace(c, e.rk); });
}

HECNN_BENCH(RescaleInplace) {
  BenchEnv& e = bench_env(state);
  time_in_place(state, e.ct1, [&](Ciphertext& c) { e.ev->rescale_inplace(c); });
}

HECNN_BENCH(Rotate) {
  BenchEnv& e = bench_env(state);
  Ciphertext c = e.ct1;
  for (auto _ : state) e.ev->rotate_inplace(c, 1, e.gk);
}

// Eight rotations of one ciphertext by steps 1..8 (eight different keys), into reused outputs:
// separately (a full key switch each), and hoisted (one modulus raising shared by all eight).
HECNN_BENCH(RotateSeparate8) {
  BenchEnv& e = bench_env(state);
  std::vector<Ciphertext> out(8);
  for (auto _ : state) {
    for (int s = 1; s <= 8; ++s) e.ev->rotate(e.ct1, s, e.gk, out[static_cast<std::size_t>(s - 1)]);
  }
}

HECNN_BENCH(RotateHoisted8) {
  BenchEnv& e = bench_env(state);
  const std::vector<int> steps = {1, 2, 3, 4, 5, 6, 7, 8};
  std::vector<Ciphertext> out;
  for (auto _ : state) e.ev->rotate_hoisted(e.ct1, steps, e.gk, out);
}

// Their sum, kept over Q*P and brought down once.
HECNN_BENCH(RotateSumHoisted8) {
  BenchEnv& e = bench_env(state);
  const std::vector<int> steps = {1, 2, 3, 4, 5, 6, 7, 8};
  for (auto _ : state) benchmark::DoNotOptimize(e.ev->rotate_sum_hoisted(e.ct1, steps, e.gk));
}

// Key switching and friends at N=16384 with an explicit thread count (second argument).
#define HECNN_BENCH_THREADS(name)                                                                  \
  void name(benchmark::State& state);                                                              \
  BENCHMARK(name)->ArgsProduct({{16384}, {1, 2}})->Unit(benchmark::kMicrosecond)->UseRealTime();   \
  void name(benchmark::State& state)

BenchEnv& bench_env_threads(const benchmark::State& state) {
  hecnn::set_num_threads(static_cast<int>(state.range(1)));
  return env(static_cast<std::size_t>(state.range(0)));
}

HECNN_BENCH_THREADS(RelinInplaceThreads) {
  BenchEnv& e = bench_env_threads(state);
  const Ciphertext three = e.ev->multiply(e.ct1, e.ct2);
  time_in_place(state, three, [&](Ciphertext& c) { e.ev->relinearize_inplace(c, e.rk); });
}

HECNN_BENCH_THREADS(RotateThreads) {
  BenchEnv& e = bench_env_threads(state);
  Ciphertext c = e.ct1;
  for (auto _ : state) e.ev->rotate_inplace(c, 1, e.gk);
}

HECNN_BENCH_THREADS(RescaleInplaceThreads) {
  BenchEnv& e = bench_env_threads(state);
  time_in_place(state, e.ct1, [&](Ciphertext& c) { e.ev->rescale_inplace(c); });
}

HECNN_BENCH_THREADS(MulCtThreads) {
  BenchEnv& e = bench_env_threads(state);
  Ciphertext c;
  for (auto _ : state) e.ev->multiply(e.ct1, e.ct2, c);
}

HECNN_BENCH_THREADS(RotateSeparate8Threads) {
  BenchEnv& e = bench_env_threads(state);
  std::vector<Ciphertext> out(8);
  for (auto _ : state) {
    for (int s = 1; s <= 8; ++s) e.ev->rotate(e.ct1, s, e.gk, out[static_cast<std::size_t>(s - 1)]);
  }
}

HECNN_BENCH_THREADS(RotateHoisted8Threads) {
  BenchEnv& e = bench_env_threads(state);
  const std::vector<int> steps = {1, 2, 3, 4, 5, 6, 7, 8};
  std::vector<Ciphertext> out;
  for (auto _ : state) e.ev->rotate_hoisted(e.ct1, steps, e.gk, out);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("hecnn_simd", hecnn::ring::simd_level_name(hecnn::ring::simd_level()));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

// Bootstrapping at N = 2^16 with the 128-bit preset boot-n65536 (circuits/bootstrap.h): arguments
// ring degree, slots (32768: full; fewer: sparse), threads (slots before threads: the keys are made
// once per slot count). One bootstrap per iteration of a
// ciphertext of uniform values in [-1, 1] at level 0; counters: the precision reached (bits, mean
// and minimum over the slots), the levels left, the keys' size. HECNN_BENCH_BOOT_N=4096 runs the
// same chain at a small, INSECURE ring degree (a smoke test). Precision is measured on the real parts
// (the values are real), -log2 of the mean and of the largest |error|, as tools/openfhe_boot does.
struct BootEnv {
  std::size_t slots = 0;
  ContextPtr ctx;
  std::unique_ptr<KeyGenerator> keygen;
  std::unique_ptr<hecnn::circuits::Bootstrapper> boot;
  hecnn::circuits::BootstrapKeys keys;
  std::vector<std::complex<double>> values;
  Ciphertext ct;
};

BootEnv& boot_env(std::size_t n, std::size_t slots) {
  static std::unique_ptr<BootEnv> e;  // one at a time: the keys take gigabytes
  if (const char* s = std::getenv("HECNN_BENCH_BOOT_N")) n = static_cast<std::size_t>(std::atol(s));
  slots = std::min(slots, n / 2);
  if (e && e->slots == slots && e->ctx->n() == n) return *e;
  e.reset();
  e = std::make_unique<BootEnv>();
  e->slots = slots;
  ParameterOptions po;
  po.allow_insecure = n != 65536;
  e->ctx = CkksContext::create(CkksParameters::preset_at("boot-n65536", n, po));
  hecnn::circuits::BootstrapParameters bp;
  bp.slots = slots;
  e->boot = std::make_unique<hecnn::circuits::Bootstrapper>(e->ctx, bp);
  e->keygen = std::make_unique<KeyGenerator>(e->ctx);
  e->keys = e->boot->generate_keys(*e->keygen);
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> d(-1, 1);
  e->values.resize(slots);
  for (auto& v : e->values) v = {d(rng), 0.0};
  CkksEncoder encoder(e->ctx);
  Plaintext p;
  encoder.encode(std::span<const std::complex<double>>(e->values), e->boot->scale(), 0, p);
  e->ct = Encryptor(e->ctx, e->keygen->secret_key()).encrypt(p);
  return *e;
}

// Precision of the outputs against the inputs (all of them the environment's values): -log2 of the
// mean and of the largest error of the real parts (the values are real, as in OpenFHE's probe).
void set_precision_counters(benchmark::State& state, const BootEnv& e, std::initializer_list<const Ciphertext*> outputs) {
  CkksEncoder encoder(e.ctx);
  Decryptor dec(e.ctx, e.keygen->secret_key());
  double sum = 0, worst = 0;
  for (const Ciphertext* o : outputs) {
    const auto got = encoder.decode_complex(dec.decrypt(*o));
    for (std::size_t i = 0; i < e.slots; ++i) {
      const double err = std::fabs(got[i].real() - e.values[i].real());
      sum += err;
      worst = std::max(worst, err);
    }
  }
  state.counters["mean_bits"] = -std::log2(sum / static_cast<double>(outputs.size() * e.slots));
  state.counters["min_bits"] = -std::log2(worst);
}

void Bootstrap(benchmark::State& state) {
  hecnn::set_num_threads(static_cast<int>(state.range(2)));
  BootEnv& e = boot_env(static_cast<std::size_t>(state.range(0)), static_cast<std::size_t>(state.range(1)));
  Ciphertext out;
  for (auto _ : state) out = e.boot->bootstrap(e.ct, e.keys);
  set_precision_counters(state, e, {&out});
  state.counters["levels_left"] = static_cast<double>(out.level());
  state.counters["keys_GiB"] = static_cast<double>(e.keys.bytes()) / (1 << 30);
}
BENCHMARK(Bootstrap)
    ->ArgsProduct({{65536}, {32768, 256}, {1, 2}})
    ->ArgNames({"N", "slots", "threads"})
    ->Unit(benchmark::kSecond)
    ->UseRealTime()
    ->Iterations(3);

// Two ciphertexts of real values through one bootstrap (Bootstrapper::bootstrap_pair): the time per
// call (both ciphertexts); precision over both outputs' real parts.
void BootstrapRealPair(benchmark::State& state) {
  hecnn::set_num_threads(static_cast<int>(state.range(2)));
  BootEnv& e = boot_env(static_cast<std::size_t>(state.range(0)), static_cast<std::size_t>(state.range(1)));
  std::pair<Ciphertext, Ciphertext> out;
  for (auto _ : state) out = e.boot->bootstrap_pair(e.ct, e.ct, e.keys);
  set_precision_counters(state, e, {&out.first, &out.second});
  state.counters["levels_left"] = static_cast<double>(out.first.level());
}
BENCHMARK(BootstrapRealPair)
    ->ArgsProduct({{65536}, {32768}, {2}})
    ->ArgNames({"N", "slots", "threads"})
    ->Unit(benchmark::kSecond)
    ->UseRealTime()
    ->Iterations(3);
