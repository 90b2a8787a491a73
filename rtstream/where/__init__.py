"""`where`: a small filter language over a row's fields (rtstream.where.language), never run as Python."""

from rtstream.where.filtered import WhereFiltered
from rtstream.where.language import Where, WhereError, WhereText, compile_where

__all__ = ["Where", "WhereError", "WhereText", "WhereFiltered", "compile_where"]
