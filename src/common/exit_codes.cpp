#include "common/exit_codes.h"

#include <iostream>
#include <new>

#include "common/error.h"

namespace hecnn {

int report_exception(const std::string& program, std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const Error& x) {
    std::cerr << program << ": error: " << x.what() << "\n";
    return kExitError;
  } catch (const std::bad_alloc&) {
    std::cerr << program << ": error: out of memory\n";
    return kExitOutOfMemory;
  } catch (const std::exception& x) {
    std::cerr << program << ": unexpected error: " << x.what() << "\n";
    return kExitUnexpected;
  } catch (...) {
    std::cerr << program << ": unexpected error\n";
    return kExitUnexpected;
  }
}

}  // namespace hecnn
