package org.vprembedded.demo

import org.vprembedded.VprSearchResult

/** How sure the app is of the best place. */
enum class MatchState { MATCHED, UNCERTAIN }

/**
 * A match is trusted when the best score reaches [minScore] and beats the second best place by
 * at least [minMargin] (a clear winner; near-equal scores mean an ambiguous, aliased view).
 */
data class ConfidencePolicy(val minScore: Float, val minMargin: Float) {
    fun margin(result: VprSearchResult): Float =
        if (result.size() < 2) Float.POSITIVE_INFINITY else result.score(0) - result.score(1)

    fun classify(result: VprSearchResult): MatchState =
        if (result.size() > 0 && result.score(0) >= minScore && margin(result) >= minMargin) {
            MatchState.MATCHED
        } else {
            MatchState.UNCERTAIN
        }
}
