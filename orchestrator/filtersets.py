"""Filters of the orchestrations list; each works the same on SQLite and PostgreSQL."""

from __future__ import annotations

import re

import django_filters
from django import forms
from django.db.models import Q
from rest_framework.exceptions import ValidationError

from orchestrator.choices import OrchestrationStatus
from orchestrator.models import Orchestration

METADATA_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,99}$")


class StrictBooleanField(forms.Field):
    """true/false (or 1/0, any case). django-filter's own field reads anything else as "no
    filter", so `?is_public=yes` answered every row as if it had been obeyed."""

    VALUES = {"true": True, "1": True, "false": False, "0": False}

    def to_python(self, value):
        if value in (None, ""):
            return None
        if isinstance(value, bool):
            return value
        try:
            return self.VALUES[str(value).lower()]
        except KeyError:
            raise forms.ValidationError(f"'{value}' is not true or false.") from None


class StrictBooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField


class ListFilterSet(django_filters.FilterSet):
    """A FilterSet that costs next to nothing when a list is asked for without filters (the
    common case), and that builds its form class once rather than on every request."""

    def filters_given(self) -> bool:
        return any(name in self.data for name in self.filters)

    def is_valid(self) -> bool:
        return (self.is_bound and not self.filters_given()) or super().is_valid()

    @property
    def qs(self):
        # With no filter given, every filter lets the queryset through: skip the form.
        if not hasattr(self, "_qs") and not self.filters_given():
            self._qs = self.queryset.all()
        return super().qs

    def get_form_class(self):
        # None of these filters depends on the request, and a form copies its fields.
        form_class = type(self).__dict__.get("_form_class")
        if form_class is None:
            form_class = super().get_form_class()
            type(self)._form_class = form_class
        return form_class


class OrchestrationFilter(ListFilterSet):
    zone = django_filters.CharFilter()
    owner = django_filters.CharFilter(field_name="owner__username")
    tag = django_filters.CharFilter(field_name="tag_rows__name")
    status = django_filters.ChoiceFilter(choices=OrchestrationStatus.choices)
    group = django_filters.UUIDFilter(field_name="group_id")
    q = django_filters.CharFilter(method="filter_search")
    metadata = django_filters.CharFilter(method="filter_metadata")
    is_public = StrictBooleanFilter()

    class Meta:
        model = Orchestration
        fields: list[str] = []

    def filter_search(self, queryset, name, value):
        return queryset.filter(Q(name__icontains=value) | Q(description__icontains=value))

    def filter_metadata(self, queryset, name, value):
        """`metadata=key:value`, repeatable; every pair must hold.

        Keys become part of a lookup path, so only plain names are accepted: a key like
        `a__contains` must not smuggle in a lookup of its own.
        """
        for pair in self.data.getlist("metadata"):
            key, sep, wanted = pair.partition(":")
            if not sep or not METADATA_KEY.match(key) or "__" in key:
                raise ValidationError(
                    {"metadata": [f"'{pair}' is not key:value with a key of letters, digits, _-."]}
                )
            queryset = queryset.filter(**{f"metadata__{key}": wanted})
        return queryset
