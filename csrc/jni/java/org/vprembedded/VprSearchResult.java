package org.vprembedded;

import java.util.Arrays;

/**
 * Top-k places of one query, best first: the Java counterpart of Python's {@code
 * vpr_embedded.maps.MapSearchResult} for a single query.
 */
public final class VprSearchResult {
  private final int[] ids;
  private final float[] scores;
  private final String[] names;
  private final double[] positions;

  VprSearchResult(int[] ids, float[] scores, String[] names, double[] positions) {
    this.ids = ids;
    this.scores = scores;
    this.names = names;
    this.positions = positions;
  }

  /** Number of results: min(k, places in the map). */
  public int size() {
    return ids.length;
  }

  /** Place indices (rows of the map), best first. */
  public int[] ids() {
    return ids.clone();
  }

  /** Scores (inner product for float maps; see the map format), descending. */
  public float[] scores() {
    return scores.clone();
  }

  /** Place names, or null if the map has none. */
  public String[] names() {
    return names == null ? null : names.clone();
  }

  /** Positions as (x, y) pairs (2 values per result), or null if the map has none. */
  public double[] positions() {
    return positions == null ? null : positions.clone();
  }

  public int id(int rank) {
    return ids[rank];
  }

  public float score(int rank) {
    return scores[rank];
  }

  /** Name of the result at {@code rank}, or null if the map has no names. */
  public String name(int rank) {
    return names == null ? null : names[rank];
  }

  @Override
  public String toString() {
    return "VprSearchResult{ids=" + Arrays.toString(ids) + ", scores=" + Arrays.toString(scores)
        + (names == null ? "" : ", names=" + Arrays.toString(names)) + "}";
  }
}
