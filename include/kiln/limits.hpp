// Kiln runtime: the thresholds Kiln's kernel-choice rules (Sources/KilnTarget/KernelRules.swift)
// share with the C++ kernels. Generated from KernelLimits — do not edit: change the Swift and
// regenerate with `KILN_UPDATE_SNAPSHOTS=1 swift test --filter limitsHeader`.
#pragma once

namespace kiln {
namespace limits {

// kiln::DirectConv takes grouped convs whose groups have a multiple of this many output channels.
constexpr int kDirectConvGroupMultiple = 8;
// kiln::GroupedConv takes groups of these many channels in and out, with a channel count that
// is a multiple of kGroupedConvChannelMultiple.
constexpr int kGroupedConvGroupWidths[] = {2, 4};
constexpr int kGroupedConvChannelMultiple = 8;
// Kiln's Winograd F(4×4, 3×3) takes input channels that are a multiple of this.
constexpr int kWinogradChannelMultiple = 8;

}  // namespace limits
}  // namespace kiln
