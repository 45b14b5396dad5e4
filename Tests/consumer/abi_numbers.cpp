// abi_numbers.cpp — the C ABI's numbers as a compiled header defines them (digits.h, written by
// kiln compile) against Kiln's C++ definitions (include/kiln/abi.hpp, which kiln/model.hpp
// includes): both come from Sources/KilnTarget/ABI.swift, and must agree. Compiled only
// (-fsyntax-only) by Tests/consumer/run.sh.
#include "digits.h"
#include <kiln/abi.hpp>

#define SAME(c, cxx) static_assert(static_cast<int>(c) == static_cast<int>(cxx), #c " differs from " #cxx)
SAME(DIGITS_ABI_VERSION, kiln::kABIVersion);
SAME(DIGITS_OK, kiln::Status::ok);
SAME(DIGITS_ERROR_NULL_POINTER, kiln::Status::null_pointer);
SAME(DIGITS_ERROR_INVALID_ARGUMENT, kiln::Status::invalid_argument);
SAME(DIGITS_ERROR_SIZE_MISMATCH, kiln::Status::size_mismatch);
SAME(DIGITS_ERROR_OUT_OF_MEMORY, kiln::Status::out_of_memory);
SAME(DIGITS_ERROR_UNSUPPORTED_CPU, kiln::Status::unsupported_cpu);
SAME(DIGITS_ERROR_BACKEND, kiln::Status::backend);
SAME(DIGITS_ERROR_INTERNAL, kiln::Status::internal);
SAME(DIGITS_F32, kiln::ElementType::f32);
SAME(DIGITS_F16, kiln::ElementType::f16);
SAME(DIGITS_BF16, kiln::ElementType::bf16);
SAME(DIGITS_S8, kiln::ElementType::s8);
SAME(DIGITS_U8, kiln::ElementType::u8);
SAME(DIGITS_S32, kiln::ElementType::s32);
SAME(DIGITS_S64, kiln::ElementType::s64);
SAME(DIGITS_BOOL, kiln::ElementType::boolean);
