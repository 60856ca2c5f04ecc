"""Local-feature verification: keypoints matched between a query and a candidate's photos,
counted as geometrically consistent inliers (RANSAC), blended with the global scores.

A global embedding compresses a photo into one vector; with one or two photos of an
individual in the gallery that vector has seen too little of it to be reliable. A trailing
edge's notches or a face's features still match point for point between two photos of the
same animal, which no other animal reproduces in the same geometry: the inlier count is
evidence a network needs no training for (HWI's 4th place and WildFusion use it so).
"""
from .features import FeatureExtractor, Features
from .verify import count_inliers

__all__ = ["FeatureExtractor", "Features", "count_inliers"]
