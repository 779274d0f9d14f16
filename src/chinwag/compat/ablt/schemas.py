"""aBLT's pydantic schemas, with aBLT's field names (`enchancement` spelled as aBLT spells it).

What the adapter returns are plain dicts, as aBLT's `response.json()` was; these validate
them: `StatisticsSchema.model_validate(api.get_usage_statistics())`.
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel


class StatisticTotalSchema(BaseModel):
    """Usage added up over a range. chinwag sends the prompt as written, so the tokens and
    words aBLT added to it (`enchancement_*`) are always 0; `original_*` is the prompt sent."""

    original_tokens: int
    enchancement_tokens: int
    response_tokens: int
    total_tokens: int
    original_words: int
    enchancement_words: int
    response_words: int
    total_words: int


class StatisticItemSchema(StatisticTotalSchema):
    """One day's usage."""

    date: date


class StatisticsSchema(BaseModel):
    """Usage over a range: the total and the days."""

    total: StatisticTotalSchema
    items: list[StatisticItemSchema]


class StatisticsRequestSchema(BaseModel):
    """What aBLT's statistics request carried."""

    user_uid: str
    start_date: date
    end_date: date


class BotSchema(BaseModel):
    """A bot, as `get_bots` lists it."""

    uid: str
    slug: str
    model: str
    name: str
    description: str
    welcome_message: str
    avatar_url: str | None


BotsSchema = BotSchema  # the name aBLT's README uses for it

__all__ = [
    "BotSchema",
    "BotsSchema",
    "StatisticItemSchema",
    "StatisticTotalSchema",
    "StatisticsRequestSchema",
    "StatisticsSchema",
]
