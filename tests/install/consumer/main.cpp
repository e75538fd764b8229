// Encrypts two vectors, computes x + y and x * y under encryption, decrypts and checks; prints the version.
// Built against an installed hecnn by tests/install/run.sh (CMake package, then pkg-config).
#include <hecnn/ckks/ckks.h>
#include <hecnn/version.h>

#include <cmath>
#include <cstdio>
#include <vector>

int main() {
  using namespace hecnn::ckks;
  ParameterOptions opts;
  opts.allow_insecure = true;  // a tiny ring, for speed: not secure
  const auto ctx = CkksContext::create(CkksParameters::from_bit_sizes(1024, {50, 40}, {60}, opts));
  KeyGenerator keygen(ctx);
  const PublicKey pk = keygen.create_public_key();
  const RelinKeys rk = keygen.create_relin_keys();
  CkksEncoder encoder(ctx);
  Encryptor encryptor(ctx, pk);
  Decryptor decryptor(ctx, keygen.secret_key());
  Evaluator ev(ctx);

  const std::size_t n = encoder.max_slots();
  std::vector<double> x(n), y(n);
  for (std::size_t i = 0; i < n; ++i) {
    x[i] = std::sin(0.01 * static_cast<double>(i));
    y[i] = 0.5 - 0.001 * static_cast<double>(i);
  }
  const double scale = 0x1p40;
  const Ciphertext cx = encryptor.encrypt(encoder.encode(x, scale));
  const Ciphertext cy = encryptor.encrypt(encoder.encode(y, scale));
  const Ciphertext sum = ev.add(cx, cy);
  Ciphertext prod = ev.multiply(cx, cy);
  ev.relinearize_inplace(prod, rk);
  ev.rescale_inplace(prod);
  const std::vector<double> s = encoder.decode(decryptor.decrypt(sum));
  const std::vector<double> p = encoder.decode(decryptor.decrypt(prod));

  double worst = 0;
  for (std::size_t i = 0; i < n; ++i) {
    worst = std::fmax(worst, std::fabs(s[i] - (x[i] + y[i])));
    worst = std::fmax(worst, std::fabs(p[i] - x[i] * y[i]));
  }
  std::printf("hecnn %s (%d.%d.%d): %zu slots, max error %.3g\n", HECNN_VERSION, HECNN_VERSION_MAJOR,
              HECNN_VERSION_MINOR, HECNN_VERSION_PATCH, n, worst);
  if (!(worst < 1e-4)) {
    std::printf("FAIL: error too large\n");
    return 1;
  }
  std::printf("ok\n");
  return 0;
}
