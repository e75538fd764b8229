// CKKS primitive timings with SEAL's default 128-bit chains, ciphertexts at the top level.
// Single-threaded by default (HECNN_BENCH_THREADS overrides), like SEAL's sealbench.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <random>

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

void setup_threads() {
  const char* t = std::getenv("HECNN_BENCH_THREADS");
  set_num_threads(t ? std::atoi(t) : 1);
}

#define HECNN_BENCH(name)                                      \
  void name(benchmark::State& state);                          \
  BENCHMARK(name)->Arg(8192)->Arg(16384)->Unit(benchmark::kMicrosecond); \
  void name(benchmark::State& state)

HECNN_BENCH(EncodeDouble) {
  setup_threads();
  BenchEnv& e = env(static_cast<std::size_t>(state.range(0)));
  Plaintext p;
  for (auto _ : state) e.encoder->encode(e.values, e.scale, e.ctx->max_level(), p);
}

HECNN_BENCH(DecodeDouble) {
  setup_threads();
  BenchEnv& e = env(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(e.encoder->decode(e.pt));
}

HECNN_BENCH(EncryptPublic) {
  setup_threads();
  BenchEnv& e = env(static_cast<std::size_t>(state.range(0)));
  Ciphertext c;
  for (auto _ : state) e.enc_pk->encrypt(e.pt, c);
}

HECNN_BENCH(EncryptSecret) {
  setup_threads();
  BenchEnv& e = env(static_cast<std::size_t>(state.range(0)));
  Ciphertext c;
  for (auto _ : state) e.enc_sk->encrypt(e.pt, c);
}

HECNN_BENCH(Decrypt) {
  setup_threads();
  BenchEnv& e = env(static_cast<std::size_t>(state.range(0)));
  Plaintext p;
  for (auto _ : state) e.dec->decrypt(e.ct1, p);
}

HECNN_BENCH(AddCt) {
  setup_threads();
  BenchEnv& e = env(static_cast<std::size_t>(state.range(0)));
  Ciphertext c = e.ct1;
  for (auto _ : state) e.ev->add_inplace(c, e.ct2);
}

HECNN_BENCH(MulPt) {
  setup_threads();
  BenchEnv& e = env(static_cast<std::size_t>(state.range(0)));
  Ciphertext c = e.ct1;
  for (auto _ : state) {
    state.PauseTiming();
    c = e.ct1;
    state.ResumeTiming();
    e.ev->multiply_plain_inplace(c, e.pt);
  }
}

HECNN_BENCH(MulCt) {
  setup_threads();
  BenchEnv& e = env(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(e.ev->multiply(e.ct1, e.ct2));
}

HECNN_BENCH(Square) {
  setup_threads();
  BenchEnv& e = env(static_cast<std::size_t>(state.range(0)));
  Ciphertext c;
  for (auto _ : state) {
    state.PauseTiming();
    c = e.ct1;
    state.ResumeTiming();
    e.ev->square_inplace(c);
  }
}

HECNN_BENCH(RelinInplace) {
  setup_threads();
  BenchEnv& e = env(static_cast<std::size_t>(state.range(0)));
  const Ciphertext three = e.ev->multiply(e.ct1, e.ct2);
  Ciphertext c;
  for (auto _ : state) {
    state.PauseTiming();
    c = three;
    state.ResumeTiming();
    e.ev->relinearize_inplace(c, e.rk);
  }
}

HECNN_BENCH(RescaleInplace) {
  setup_threads();
  BenchEnv& e = env(static_cast<std::size_t>(state.range(0)));
  Ciphertext c;
  for (auto _ : state) {
    state.PauseTiming();
    c = e.ct1;
    state.ResumeTiming();
    e.ev->rescale_inplace(c);
  }
}

HECNN_BENCH(Rotate) {
  setup_threads();
  BenchEnv& e = env(static_cast<std::size_t>(state.range(0)));
  Ciphertext c = e.ct1;
  for (auto _ : state) e.ev->rotate_inplace(c, 1, e.gk);
}

HECNN_BENCH(RotateHoisted8) {
  setup_threads();
  BenchEnv& e = env(static_cast<std::size_t>(state.range(0)));
  const std::vector<int> steps = {1, 2, 3, 4, 5, 6, 7, 8};
  for (auto _ : state) benchmark::DoNotOptimize(e.ev->rotate_hoisted(e.ct1, steps, e.gk));
}

}  // namespace

BENCHMARK_MAIN();
