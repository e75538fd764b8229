#include "he/batch/backend.h"

namespace hecnn::he::batch {

std::size_t batch_size(const ckks::CkksParameters& params) { return params.max_slots(); }

KeyRequirements key_requirements(const Program&) {
  KeyRequirements k;
  k.relinearization = true;
  return k;
}

ClientSpec client_spec(const Program& program, const ckks::CkksParameters& params, int scale_bits) {
  ClientSpec s;
  s.layout = Layout::Batch;
  s.params_id = params.id();
  s.scale_bits = scale_bits;
  s.input = program.input;
  s.outputs = program.outputs();
  s.output_factor = program.output_factor;
  s.batch_size = batch_size(params);
  s.input_ciphertexts = static_cast<std::size_t>(program.input.size());
  s.output_ciphertexts = s.outputs;
  return s;
}

ckks::SparseMatrix lower_linear(const Stage& stage) {
  const LinearOp& op = stage.linear();
  ckks::SparseMatrix m;
  const auto outs = static_cast<std::size_t>(stage.out.size());
  m.row_start.assign(outs + 1, 0);
  op.for_each_term(stage.in, stage.out, [&](std::size_t o, std::size_t i, double w) {
    m.col.push_back(static_cast<std::uint32_t>(i));
    m.weight.push_back(w);
    ++m.row_start[o + 1];
  });
  for (std::size_t o = 0; o < outs; ++o) m.row_start[o + 1] += m.row_start[o];
  m.bias.resize(outs);
  for (std::size_t o = 0; o < outs; ++o) m.bias[o] = op.bias_of(o, stage.out);
  return m;
}

}  // namespace hecnn::he::batch
