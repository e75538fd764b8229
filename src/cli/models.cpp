// Model commands: `hecnn eval` (plaintext accuracy), `hecnn import-keras`, `hecnn import-onnx`,
// `hecnn export-onnx`, `hecnn convert`, `hecnn inspect`.
#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "cli/encrypted.h"
#include "cli/options.h"
#include "cli/outputs.h"
#include "common/error.h"
#include "common/progress.h"
#include "common/stopwatch.h"
#include "common/threads.h"
#include "nn/convert.h"
#include "nn/forward.h"
#include "nn/keras.h"
#include "nn/onnx.h"
#include "nn/safetensors.h"

namespace hecnn::cli {

namespace {

struct EvalOptions {
  std::string model, split = "test";
  DatasetOptions data;
  bool confusion = false, fold_bn = false, quiet = false, encrypted = false, simulate = false;
  std::string mode = "auto", memory_limit, predictions;
  StreamOptions stream;
  int threads = 0;
  he::CompileOptions compile;
};

void print_confusion(const nn::Evaluation& e) {
  const std::size_t k = e.confusion.size();
  std::printf("\nconfusion matrix (rows: true label, columns: predicted)\n      ");
  for (std::size_t j = 0; j < e.confusion[0].size(); ++j) std::printf("%6zu", j);
  std::printf("\n");
  for (std::size_t i = 0; i < k; ++i) {
    std::printf("%6zu", i);
    for (std::size_t v : e.confusion[i]) std::printf("%6zu", v);
    std::printf("\n");
  }
}

void run_eval(const EvalOptions& o) {
  if (o.encrypted) {
    if (o.split != "test") throw Error("--encrypted evaluates the test split");
    run_encrypted_eval({o.model, o.data, o.threads, o.quiet, o.simulate, o.compile, o.mode, o.memory_limit, o.stream, o.predictions});
    return;
  }
  if (!o.predictions.empty()) check_output("--predictions", o.predictions, {o.model});
  apply_threads(o.threads);
  nn::Model model = nn::load_model(o.model);
  if (o.fold_bn) model = nn::fold_batch_norm(model);
  if (o.split != "test" && o.split != "train") throw Error("--split must be 'test' or 'train'");
  nn::Dataset all = load_dataset(o.data, o.split == "test" ? nn::Split::Test : nn::Split::Train);
  const std::size_t n = selected_count(o.data, all.size());
  // Images [offset, offset + n): evaluated as a dataset of their own, reported with their true indices.
  const nn::Dataset data = nn::take_range(std::move(all), o.data.offset, n);
  std::printf("model %s: %zu layers, input %s, %s\n", o.model.c_str(), model.layers.size(), model.input.to_string().c_str(),
              o.fold_bn ? "batch normalization folded" : "as stored");
  std::printf("dataset %s (%s split): %zu images", data.name.c_str(), o.split.c_str(), n);
  if (o.data.offset > 0) std::printf(" from index %zu", o.data.offset);
  std::printf("\n");
  const Stopwatch t;
  ProgressLine line(!o.quiet);
  const nn::Evaluation e = nn::evaluate(model, data, n, !o.predictions.empty(), [&](std::size_t done) {
    line.update("  " + std::to_string(done) + " / " + std::to_string(n) + " images", done == n);
  });
  line.finish();
  const double secs = t.seconds();
  std::printf("accuracy: %.2f %% (%zu / %zu) in %.2f s (%.0f images/s, %d threads)\n", 100.0 * e.accuracy(), e.correct,
              e.count, secs, static_cast<double>(e.count) / secs, hecnn::num_threads());
  if (o.confusion) print_confusion(e);
  if (!o.predictions.empty()) {
    write_predictions(o.predictions, o.data.offset, e.logits);
    std::printf("predictions: %s\n", o.predictions.c_str());
  }
}

struct ImportOptions {
  std::string structure, weights, out;
};

void run_import(const ImportOptions& o) {
  check_output("--out", o.out, {o.structure, o.weights});
  nn::Model m = nn::import_keras(o.structure, o.weights);
  m.info["imported_from"] = {o.structure, o.weights};
  nn::save_model(m, o.out);
  std::printf("%s", m.summary().c_str());
  std::printf("written: %s\n", o.out.c_str());
}

struct OnnxOptions {
  std::string in, out;
};

void run_import_onnx(const OnnxOptions& o) {
  check_output("--out", o.out, {o.in});
  nn::Model m = nn::import_onnx(o.in);
  m.info["imported_from"] = o.in;
  nn::save_model(m, o.out);
  std::printf("%s", m.summary().c_str());
  std::printf("written: %s\n", o.out.c_str());
}

void run_export_onnx(const OnnxOptions& o) {
  check_output("--out", o.out, {o.in});
  const nn::Model m = nn::load_model(o.in);
  nn::export_onnx(m, o.out);
  std::printf("%s", m.summary().c_str());
  std::printf("written: %s\n", o.out.c_str());
}

// A model file by its extension: .onnx is imported, anything else is a hecnn model file.
nn::Model load_any_model(const std::string& path) {
  const bool onnx = path.size() >= 5 && path.compare(path.size() - 5, 5, ".onnx") == 0;
  return onnx ? nn::import_onnx(path) : nn::load_model(path);
}

struct ConvertCliOptions {
  std::string model, out;
  DatasetOptions data;
  std::vector<std::string> per_layer;
  bool no_batch_norm = false;
  nn::ConvertOptions convert;
  int threads = 0;
};

void run_convert(ConvertCliOptions o) {
  check_output("--out", o.out, {o.model});
  apply_threads(o.threads);
  for (const std::string& item : o.per_layer) {
    const auto eq = item.find('=');
    std::size_t layer = 0;
    try {
      if (eq == std::string::npos || eq == 0) throw std::invalid_argument("no '='");
      std::size_t used = 0;
      layer = std::stoul(item.substr(0, eq), &used);
      if (used != eq || item[0] == '-') throw std::invalid_argument("not a layer index");
    } catch (const std::exception&) {
      throw Error("--layer-activation '" + item + "': expected LAYER=SPEC, e.g. 3=swish:deg4:range4");
    }
    o.convert.per_layer[layer] = item.substr(eq + 1);
  }
  o.convert.insert_batch_norm = !o.no_batch_norm;
  const nn::Model m = load_any_model(o.model);
  nn::check_convert_options(m, o.convert);
  const nn::Dataset data = load_dataset(o.data, nn::Split::Train);
  const nn::Conversion c = nn::convert_to_polynomials(m, data, o.data.limit, o.convert);
  nn::Model out = c.model;
  out.info["converted_from"] = o.model;
  out.info["conversion"] = {{"activation", o.convert.activation},
                            {"calibration", {{"dataset", o.data.dataset}, {"images", c.calibration_images}}},
                            {"batch_norm_inserted", o.convert.insert_batch_norm},
                            {"folded", o.convert.fold}};
  nn::save_model(out, o.out);
  std::printf("%s", out.summary().c_str());
  std::printf("%s", nn::format_conversion(c).c_str());
  std::printf("written: %s\n", o.out.c_str());
}

}  // namespace

void register_models(CLI::App& app) {
  auto eo = std::make_shared<EvalOptions>();
  CLI::App* eval = app.add_subcommand("eval", "Classify a dataset with a model (plaintext reference)");
  eval->add_option("--model,-m", eo->model, "Model file (.safetensors)")->required();
  add_dataset_options(eval, eo->data, true);
  eval->add_option("--split", eo->split, "test | train")->capture_default_str();
  eval->add_flag("--confusion", eo->confusion, "Print the confusion matrix");
  eval->add_flag("--fold-bn", eo->fold_bn, "Fold batch normalization into the preceding layers first");
  add_threads_option(eval, eo->threads);
  add_quiet_flag(eval, eo->quiet);
  eval->add_flag("--encrypted,-e", eo->encrypted,
                 "Classify encrypted images: keygen, encrypt, infer, decrypt in one process, with timings");
  add_mode_option(eval, eo->mode);
  add_memory_limit_option(eval, eo->memory_limit);
  add_stream_options(eval, eo->stream);
  eval->add_option("--predictions", eo->predictions,
                   "Write one line per image: index, predicted class, logits (plaintext or --encrypted)");
  eval->add_flag("--simulate", eo->simulate, "With --encrypted: also run the compiled computation on doubles");
  add_compile_options(eval, eo->compile);
  eval->callback([eo] { run_eval(*eo); });

  auto io = std::make_shared<ImportOptions>();
  CLI::App* imp = app.add_subcommand("import-keras", "Convert a Keras model (structure JSON + weights HDF5) to a hecnn model");
  imp->add_option("--structure,-s", io->structure, "Keras structure JSON (model.to_json())")->required();
  imp->add_option("--weights,-w", io->weights, "Keras weights HDF5 (model.save_weights())")->required();
  imp->add_option("--out,-o", io->out, "Output model file (.safetensors)")->required();
  imp->callback([io] { run_import(*io); });

  auto oi = std::make_shared<OnnxOptions>();
  CLI::App* imo = app.add_subcommand("import-onnx", "Convert an ONNX model (opset 9 or later) to a hecnn model");
  imo->add_option("model", oi->in, "ONNX model (.onnx)")->required();
  imo->add_option("--out,-o", oi->out, "Output model file (.safetensors)")->required();
  imo->callback([oi] { run_import_onnx(*oi); });

  auto oe = std::make_shared<OnnxOptions>();
  CLI::App* exo = app.add_subcommand("export-onnx", "Write a hecnn model as an ONNX graph (polynomials as arithmetic)");
  exo->add_option("model", oe->in, "Model file (.safetensors)")->required();
  exo->add_option("--out,-o", oe->out, "Output ONNX file (.onnx)")->required();
  exo->callback([oe] { run_export_onnx(*oe); });

  auto co = std::make_shared<ConvertCliOptions>();
  co->data.limit = 1000;
  CLI::App* conv = app.add_subcommand(
      "convert", "Make a model HE-friendly: polynomial activations, calibrated batch normalization in front of them");
  conv->add_option("--model,-m", co->model, "Model file (.safetensors, or .onnx: imported first)")->required();
  conv->add_option("--out,-o", co->out, "Output model file (.safetensors)")->required();
  conv->add_option("--activation", co->convert.activation,
                   "Polynomial for every exact activation, e.g. swish:deg4:range4 (see hecnn approx)")
      ->required();
  conv->add_option("--layer-activation", co->per_layer,
                   "LAYER=SPEC: this polynomial for activation layer LAYER (as hecnn inspect numbers them); repeatable");
  add_dataset_options(conv, co->data, false);
  conv->get_option("--limit")->description("Calibration images, spread over the training split (0: all)")->default_str("1000");
  conv->add_flag("--no-batch-norm", co->no_batch_norm, "Do not insert calibrated batch normalization");
  conv->add_flag("--fold-bn", co->convert.fold, "Fold batch normalization into the preceding layers at the end");
  add_threads_option(conv, co->threads);
  conv->callback([co] { run_convert(*co); });

  auto path = std::make_shared<std::string>();
  CLI::App* ins = app.add_subcommand("inspect", "Print a model's layers, shapes and activation polynomials");
  ins->add_option("model", *path, "Model file (.safetensors)")->required();
  ins->callback([path] {
    const nn::Model m = nn::load_model(*path);
    std::printf("%s", m.summary().c_str());
    if (!m.info.empty()) {
      nlohmann::json info = m.info;
      if (info.contains("training") && info["training"].is_object()) info["training"].erase("history");  // per-epoch detail
      std::printf("info: %s\n", info.dump(2).c_str());
    }
  });
}

}  // namespace hecnn::cli
