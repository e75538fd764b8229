// The registry of back ends: the one place that names the concrete layouts.
#include "he/backend.h"

#include "common/error.h"
#include "common/stopwatch.h"
#include "he/batch/backend.h"
#include "he/packed/backend.h"

namespace hecnn::he {

namespace {
const batch::BatchBackend kBatch;
const packed::PackedBackend kPacked;
const Backend* const kRegistry[] = {&kPacked, &kBatch};  // the order auto considers them
}  // namespace

const Backend& backend(Layout layout) {
  for (const Backend* b : kRegistry) {
    if (b->layout() == layout) return *b;
  }
  throw Error("no back end for layout " + std::to_string(static_cast<int>(layout)));
}

std::vector<const Backend*> backends() { return {std::begin(kRegistry), std::end(kRegistry)}; }

LocalRun Backend::run_local(const InferenceEngine& engine, const InferenceClient& client, const float* images, std::size_t count,
                            const ProgressFn& progress) const {
  LocalRun r;
  const Stopwatch t;
  std::vector<ckks::Ciphertext> query = client.encrypt(images, count);
  r.encrypt_seconds = t.seconds();
  r.result = engine.run(std::move(query), progress);
  return r;
}

std::unique_ptr<InferenceEngine> make_engine(const HePlan& plan, ckks::ContextPtr ctx, const EvaluationKeys& keys,
                                             const EngineOptions& options) {
  return backend(plan.layout).make_engine(plan, std::move(ctx), keys, options);
}

std::unique_ptr<InferenceClient> make_client(const ClientSpec& spec, ckks::ContextPtr ctx, const ckks::SecretKey& sk) {
  return backend(spec.layout).make_client(spec, std::move(ctx), sk);
}

Layout auto_layout(std::size_t images, std::size_t packed_images_per_query, bool batch_fits) {
  if (!batch_fits || (packed_images_per_query > 0 && images <= kAutoPackedGroups * packed_images_per_query)) return Layout::Packed;
  return Layout::Batch;
}

HePlan compile_for_mode(const nn::Model& model, CompileOptions options, const std::string& mode, std::size_t images,
                        std::size_t memory_limit, int threads, int tile, std::vector<std::string>* notes) {
  if (mode != "auto") return compile(model, options, parse_layout(mode));
  options.packed_images = images;  // the packed layout is chosen for this many images
  const auto note = [&](const std::string& s) {
    if (notes) notes->push_back(s);
  };
  HePlan packed;
  try {
    packed = compile(model, options, Layout::Packed);
  } catch (const Error& e) {
    note(std::string("auto mode: the packed layout does not apply (") + e.what() + "); using the batch layout");
    return compile(model, options, Layout::Batch);
  }
  // Bootstrapping plans run in the packed layout only (the batch layout has no parameters that deep).
  if (packed.bootstrap || auto_layout(images, packed.batch_size()) == Layout::Packed) return packed;
  HePlan batch = compile(model, options, Layout::Batch);
  const std::size_t need = estimate_memory(batch, threads, 0, true, tile).total();
  if (auto_layout(images, packed.batch_size(), need <= memory_limit) == Layout::Batch) return batch;
  note("auto mode: the batch layout would need " + gib(need) + ", more than the memory limit of " + gib(memory_limit) +
       "; using the packed layout");
  return packed;
}

}  // namespace hecnn::he
