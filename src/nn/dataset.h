#pragma once
// Image datasets: MNIST-format IDX files (gzip or raw) and CIFAR-10 binary batches, pixels scaled
// to [0, 1], images in CHW order.
#include <cstdint>
#include <string>
#include <vector>

#include "nn/model.h"

namespace hecnn::nn {

enum class Split { Train, Test };

struct Dataset {
  std::string name;
  Shape shape;                       // per image
  std::vector<float> images;         // size() * shape.size() values
  std::vector<std::uint8_t> labels;
  int classes = 10;
  std::size_t size() const { return labels.size(); }
  const float* image(std::size_t i) const { return images.data() + i * static_cast<std::size_t>(shape.size()); }
};

// IDX images (magic 0x803, n x rows x cols bytes) and labels (0x801); gzip is detected by content.
Dataset read_idx(const std::string& images_path, const std::string& labels_path);
// CIFAR-10 binary records (1 label byte + 3072 pixel bytes, R then G then B planes): each file holds
// a whole number of records, 1 to limits::kCifarBatchRecords (a standard batch file holds 10,000;
// subsets such as a 500-image sample are accepted); a partial record or an empty file is an error.
Dataset read_cifar10_batches(const std::vector<std::string>& paths);

// Images [first, first + count) of d, in order (the rest freed); throws hecnn::Error when the range
// is beyond the dataset.
Dataset take_range(Dataset d, std::size_t first, std::size_t count);
// "MNIST", "Fashion-MNIST", "CIFAR-10" for the names load_dataset takes.
std::string display_name(const std::string& name);

// Dataset by name ("mnist", "fashion-mnist", "cifar10") and split, from `dir`, or when dir is empty
// from the default locations (see dataset_search_dirs). A missing or malformed file gets a message
// naming the file, the expected format and where to download the dataset.
Dataset load_dataset(const std::string& name, Split split, const std::string& dir = "");
std::vector<std::string> dataset_search_dirs(const std::string& name);
std::vector<std::string> dataset_names();

// A random subset split off for validation (deterministic for a seed).
void split_validation(const Dataset& all, double fraction, std::uint64_t seed, Dataset& train, Dataset& val);

}  // namespace hecnn::nn
