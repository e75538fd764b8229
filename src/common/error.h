#pragma once
// The one exception type thrown at the CKKS library's API boundary.
#include <stdexcept>
#include <string>

namespace hecnn {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace hecnn
