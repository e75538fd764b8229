#pragma once
// ONNX models in and out, through Debian's ONNX library (libonnx-dev: the protobuf definitions,
// the checker and shape inference). Built into its own library, hecnn_onnx, so that only the
// programs that import or export ONNX link it.
#include <string>

#include "nn/model.h"

namespace hecnn::nn {

// Reads an ONNX model (default-domain opset 9 or later), runs ONNX's checker and shape inference
// on it, and maps the chain of nodes from the graph's one input (N x C x H x W, float, fixed C, H,
// W) to its one output onto hecnn layers: Conv (strides, no or "same" padding, dilations 1,
// group 1), BatchNormalization, Gemm, MatMul (+ Add), AveragePool, GlobalAveragePool, Flatten,
// Reshape to [N, C*H*W], Identity and Dropout (dropped), a final Softmax or LogSoftmax (dropped:
// the argmax is unchanged). A connected group of element-wise nodes with one input tensor and one
// output tensor is an activation: stored as a polynomial when it is arithmetic (Mul, Add, Sub,
// Div by a constant, Pow with a whole exponent, Neg, constants), else recognized as an exact
// function (relu, sigmoid, tanh, swish, gelu, mish, softplus) by evaluating it. Weights come from
// initializers or Constant nodes; tensors stored in external files are refused. Every size is
// bounded before anything is allocated from it (nn/limits.h). Throws hecnn::Error naming the file
// and, where there is one, the node (name and operator type) and the problem.
Model import_onnx(const std::string& path);

// Writes `m` as an ONNX graph (opset 13): Conv, BatchNormalization, AveragePool,
// GlobalAveragePool, Flatten, Gemm; polynomial activations as arithmetic (Horner: Mul and Add with
// float constants), exact ones as their operators. The activation specifications go into the
// metadata ("hecnn.activations"), so that import_onnx restores them (after checking that they give
// the graph's coefficients). The graph is checked by ONNX's checker and shape inference before it
// is written (atomically). Throws hecnn::Error.
void export_onnx(const Model& m, const std::string& path);

}  // namespace hecnn::nn
