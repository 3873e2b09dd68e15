"""The Rider-Waite-Smith tarot deck as data: 78 cards with keywords and their two meanings.

The deck is written as text blocks, one per card: a header line `Name | keyword, keyword`,
then the upright meaning, then the reversed meaning. They are parsed once, at import, into
frozen `Card`s; the numbering follows Waite (8 Strength, 11 Justice), minor ranks run Ace (1)
to Ten (10), then Page (11), Knight (12), Queen (13), King (14).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType


class Arcana(StrEnum):
    """The two halves of the deck."""

    MAJOR = "major"
    MINOR = "minor"


class Suit(StrEnum):
    """The four suits of the minor arcana."""

    WANDS = "wands"
    CUPS = "cups"
    SWORDS = "swords"
    PENTACLES = "pentacles"


class Element(StrEnum):
    """The classical element each suit stands for."""

    FIRE = "fire"
    WATER = "water"
    AIR = "air"
    EARTH = "earth"


class Rank(StrEnum):
    """The fourteen ranks of a suit, in order: pips Ace to Ten, then the four court cards."""

    ACE = "ace"
    TWO = "two"
    THREE = "three"
    FOUR = "four"
    FIVE = "five"
    SIX = "six"
    SEVEN = "seven"
    EIGHT = "eight"
    NINE = "nine"
    TEN = "ten"
    PAGE = "page"
    KNIGHT = "knight"
    QUEEN = "queen"
    KING = "king"

    @property
    def number(self) -> int:
        """1 for the Ace up to 14 for the King."""
        return list(Rank).index(self) + 1

    @property
    def label(self) -> str:
        """The rank as it is printed on the card: `Ace`, `Knight`."""
        return self.value.capitalize()


SUIT_ELEMENTS: Mapping[Suit, Element] = MappingProxyType(
    {
        Suit.WANDS: Element.FIRE,
        Suit.CUPS: Element.WATER,
        Suit.SWORDS: Element.AIR,
        Suit.PENTACLES: Element.EARTH,
    }
)
COURT_RANKS = frozenset({Rank.PAGE, Rank.KNIGHT, Rank.QUEEN, Rank.KING})


@dataclass(frozen=True)
class Card:
    """One tarot card: identity, place in the deck, keywords and its two meanings."""

    id: str
    name: str
    arcana: Arcana
    suit: Suit | None
    number: int
    rank: Rank | None
    keywords: tuple[str, ...]
    upright_meaning: str
    reversed_meaning: str

    @property
    def element(self) -> Element | None:
        """The suit's element; None for the major arcana."""
        return None if self.suit is None else SUIT_ELEMENTS[self.suit]

    @property
    def is_court(self) -> bool:
        """Page, Knight, Queen or King."""
        return self.rank in COURT_RANKS

    def meaning(self, *, reversed: bool) -> str:
        """The meaning for one orientation."""
        return self.reversed_meaning if reversed else self.upright_meaning


_MAJOR = """
The Fool | beginnings, innocence, spontaneity, free spirit, leap of faith
  A fresh start taken with open-hearted trust and spontaneity. Leap, but watch where you step.
  Recklessness, naivety or a risk taken without thought; or fear holding back a new start.

The Magician | manifestation, willpower, skill, resourcefulness, concentration
  You have the tools, skill and focus to make an idea real. Act with clear intent.
  Talent scattered or wasted, or skill used to manipulate. Plans lack grounding or honesty.

The High Priestess | intuition, mystery, the subconscious, inner knowledge, stillness
  Trust your intuition and what lies beneath the surface. Something hidden waits to be revealed.
  Intuition ignored or secrets kept. Outside noise cuts you off from your inner voice.

The Empress | abundance, nurturing, fertility, nature, creativity
  Abundance, nurturing care and creative growth. What you have tended is ready to flourish.
  Creative block, smothering or neglect, or dependence on others. Care for yourself first.

The Emperor | authority, structure, stability, leadership, discipline
  Structure, discipline and steady authority. Clear rules and leadership bring stability.
  Rigidity, domination or the abuse of power; or a lack of discipline and self-control.

The Hierophant | tradition, convention, institutions, spiritual guidance, shared beliefs
  Tradition, shared beliefs and established institutions. A mentor or the accepted way serves you.
  Challenging convention to find your own path, or feeling confined by dogma and rules.

The Lovers | love, union, harmony, choices, shared values
  A meaningful union, or a choice made from the heart and in line with your values.
  Disharmony and misaligned values in a relationship; a hard choice avoided or made badly.

The Chariot | willpower, determination, victory, control, momentum
  Victory through willpower and determination. Hold opposing forces in check and drive on.
  Loss of direction or control; opposing forces pull you apart, or aggression replaces focus.

Strength | courage, compassion, inner strength, patience, gentle control
  Inner strength, courage and gentle control. Patience and compassion tame what force cannot.
  Self-doubt, weakness or raw emotion running unchecked. Reconnect with your quiet courage.

The Hermit | introspection, solitude, inner guidance, wisdom, soul-searching
  A time to withdraw, reflect and seek the truth within. Wisdom comes from solitude.
  Isolation or loneliness taken too far; or refusing the reflection you need.

Wheel of Fortune | cycles, fate, turning point, luck, change
  The wheel turns: a turning point, good fortune and the cycles of fate. Change is coming.
  A run of bad luck, or resistance to change you cannot control. Act on what you can.

Justice | fairness, truth, cause and effect, law, accountability
  Fairness, truth and accountability. Decisions are weighed and actions meet their consequences.
  Unfairness, dishonesty or dodged accountability; a decision or legal matter goes against you.

The Hanged Man | surrender, suspension, new perspective, letting go, pause
  A pause and a surrender that reveal a new perspective. Letting go now brings insight.
  Stalling, resistance or needless sacrifice; a delay that serves no purpose.

Death | endings, transformation, transition, release, renewal
  An ending that clears the way for transformation. One door closes so another can open.
  Resisting a change that is needed, and clinging to what has already ended.

Temperance | balance, moderation, patience, purpose, harmony
  Balance, moderation and patience. Blend opposites calmly to find the middle way.
  Imbalance, excess or haste; things are out of harmony and need realigning.

The Devil | bondage, addiction, materialism, temptation, shadow self
  Bondage to temptation, addiction or materialism. The chains are looser than they look.
  Release from limiting attachments: breaking free and reclaiming your power.

The Tower | sudden upheaval, revelation, collapse, awakening, chaos
  Sudden upheaval that tears down false structures. A shock or revelation clears away illusion.
  Disaster narrowly averted or change resisted; the upheaval is delayed or happens inwardly.

The Star | hope, renewal, inspiration, serenity, faith
  Hope, renewal and quiet faith after hardship. Healing is under way and the future is brighter.
  Discouragement or lost faith. Hope is still there, but it needs to be rekindled.

The Moon | illusion, fear, anxiety, the subconscious, uncertainty
  Illusion, uncertainty and fears rising from the subconscious. Not all is as it seems.
  Confusion lifting and fears released; hidden truths surface, though self-deception may linger.

The Sun | joy, success, vitality, positivity, clarity
  Joy, success and vitality. Warmth and clarity shine on everything you do.
  Joy dimmed or delayed by passing setbacks, or optimism tipping into over-confidence.

Judgement | rebirth, inner calling, reckoning, absolution, awakening
  A reckoning and an awakening: you hear a calling and rise to a new stage of life.
  Self-doubt and harsh self-judgement; ignoring the call to change or to learn from the past.

The World | completion, integration, accomplishment, wholeness, travel
  Completion, accomplishment and wholeness. A cycle ends in fulfilment.
  Lack of closure or an unfinished journey; shortcuts taken and a goal just out of reach.
"""

_WANDS = """
Ace | inspiration, new opportunity, creative spark, potential
  A spark of inspiration and a new venture full of creative energy. Seize the opportunity.
  Delays, lack of motivation or a false start; the spark is there but will not catch.

Two | planning, future vision, decisions, discovery
  Planning ahead and choosing where to go next. The world lies before you; plan boldly.
  Fear of the unknown or poor planning keeps you where you are.

Three | expansion, foresight, progress, looking ahead
  Expansion and progress: your plans are under way and your ships are coming in.
  Setbacks and delays; obstacles or short-sighted plans frustrate progress.

Four | celebration, harmony, home, homecoming, milestones
  Celebration, harmony and a joyful homecoming. A milestone is reached and shared with others.
  Disrupted celebrations or a lack of support at home; tension where there should be harmony.

Five | conflict, competition, rivalry, tension
  Competition, rivalry and clashing egos. Conflict can sharpen you if it stays constructive.
  Conflict avoided or coming to an end; common ground is found and differences respected.

Six | victory, public recognition, success, self-confidence
  Victory and public recognition. Success is acknowledged and confidence grows.
  Lack of recognition or a fall from grace; pride, or success that fails to arrive.

Seven | challenge, perseverance, defence, standing firm
  Standing your ground against challenge. Defend your position and persevere.
  Overwhelmed and ready to give up; you feel besieged and doubt you can hold on.

Eight | speed, swift action, movement, news
  Swift movement and rapid progress; news arrives and events move fast.
  Delays and frustration; momentum is lost, or haste scatters your energy.

Nine | resilience, persistence, last stand, boundaries
  Resilience near the finish line: battered but still standing. Persist a little longer.
  Exhaustion, paranoia or defensiveness; you may be close to giving up.

Ten | burden, responsibility, overload, hard work
  Weighed down by too many responsibilities. Success has come at the price of heavy work.
  Laying burdens down and delegating; or collapsing under a load you will not share.

Page | enthusiasm, exploration, discovery, free spirit
  Enthusiasm, curiosity and a message of new adventure. Explore ideas with a free spirit.
  Haste, impatience or lack of direction; ideas that never get off the ground.

Knight | energy, passion, adventure, impulsiveness
  Energy, passion and bold action; a charge after adventure.
  Recklessness, impatience and scattered energy; haste that ends in frustration.

Queen | confidence, courage, determination, warmth
  Confident, warm and determined: she leads with courage and vibrancy.
  Insecurity, jealousy or demanding behaviour; self-confidence needs rebuilding.

King | leadership, vision, entrepreneurship, honour
  Visionary leadership and bold enterprise. Inspire others to follow your vision.
  Impulsive, overbearing or ruthless leadership; high expectations set without patience.
"""

_CUPS = """
Ace | new love, compassion, emotional awakening, creativity
  An overflowing of feeling: new love, compassion and emotional renewal.
  Emotions blocked or repressed; love withheld, or self-love neglected.

Two | partnership, unity, mutual attraction, connection
  A partnership of mutual respect and attraction; two people meet as equals.
  Imbalance or a breakdown in a relationship; disharmony and mistrust.

Three | celebration, friendship, community, joy
  Celebration, friendship and community; joy shared with others.
  Overindulgence, gossip or isolation from friends; a third party intrudes.

Four | apathy, contemplation, discontent, missed opportunity
  Apathy and contemplation; an offer goes unnoticed while you dwell on what is missing.
  Withdrawal ends: new awareness, an offer accepted and a readiness to move on.

Five | loss, grief, regret, disappointment
  Loss, grief and regret: mourning the spilled cups while two still stand behind you.
  Acceptance, forgiveness and moving on; recovery from loss begins.

Six | nostalgia, childhood memories, innocence, reunion
  Nostalgia, childhood memories and innocent kindness; a reunion or a gift from the past.
  Living in the past or idealising it; it is time to move forward.

Seven | choices, illusion, fantasy, wishful thinking
  Many choices and tempting illusions; wishful thinking clouds judgement.
  Clarity and a decision made; illusions dissolve and real priorities emerge.

Eight | walking away, disillusionment, seeking deeper meaning
  Walking away from what no longer fulfils you, in search of deeper meaning.
  Fear of moving on, or aimless drifting; staying where you no longer belong.

Nine | contentment, satisfaction, wishes fulfilled, gratitude
  The wish card: contentment, satisfaction and wishes coming true.
  Smugness, indulgence or dissatisfaction; wishes that fall short of hopes.

Ten | harmony, family, happiness, emotional fulfilment
  Lasting happiness, family harmony and emotional fulfilment.
  Broken harmony at home, misaligned values or strained family ties.

Page | creative opportunity, intuitive messages, curiosity, sensitivity
  A gentle, creative message; curiosity and an open heart bring an emotional surprise.
  Emotional immaturity, creative block or daydreaming; feelings are easily hurt.

Knight | romance, charm, imagination, following the heart
  A romantic, charming idealist; an invitation or offer that follows the heart.
  Moodiness, unrealistic expectations or empty charm; jealousy and disappointment.

Queen | compassion, calm, comfort, intuition
  Compassion, emotional security and intuition; care for others from a calm centre.
  Emotional insecurity or co-dependence; giving so much that you lose yourself.

King | emotional balance, diplomacy, generosity, wisdom
  Emotional balance and generous wisdom; calm diplomacy under pressure.
  Emotional manipulation, moodiness or volatility; feelings held down until they erupt.
"""

_SWORDS = """
Ace | breakthrough, clarity, truth, sharp mind
  A breakthrough of clarity and truth; a sharp mind cuts through confusion.
  Confusion, miscommunication or clouded judgement; ideas wielded harshly.

Two | difficult decision, stalemate, avoidance, blocked emotions
  A stalemate or a hard decision avoided; remove the blindfold and choose.
  Indecision and information overload; the lesser of two evils, or a truth revealed.

Three | heartbreak, grief, sorrow, painful truth
  Heartbreak, sorrow and painful truth; grief that needs to be felt.
  Recovery, the release of pain and forgiveness; healing after heartbreak.

Four | rest, recovery, contemplation, retreat
  Rest, recovery and quiet contemplation; retreat to restore your strength.
  Restlessness, burnout or stagnation; or a return to action after rest.

Five | conflict, defeat, winning at all costs, tension
  Conflict and a hollow victory; winning at all costs leaves others defeated.
  Reconciliation and making amends; or past resentments that still linger.

Six | transition, moving on, leaving behind, rite of passage
  A transition toward calmer waters; moving on from difficulty.
  Resistance to change or unfinished business; the journey stalls.

Seven | deception, strategy, stealth, getting away with something
  Deception, strategy or acting alone by stealth; someone may be getting away with something.
  Coming clean: a pricked conscience, or deceit exposed.

Eight | restriction, entrapment, victim mentality, self-limiting beliefs
  Feeling trapped by your own thoughts and fears; the bonds are looser than they seem.
  Release from self-imposed limits; a new perspective brings freedom.

Nine | anxiety, worry, nightmares, despair
  Anxiety, worry and sleepless nights; fears grow larger in the dark.
  Hope returning and reaching out for help; or inner turmoil that must finally be faced.

Ten | painful ending, betrayal, rock bottom, defeat
  A painful ending, betrayal or rock bottom. It cannot get worse, and dawn follows.
  Recovery and regeneration after ruin; or resisting an end that cannot be avoided.

Page | curiosity, new ideas, thirst for knowledge, vigilance
  Curiosity, new ideas and a thirst for knowledge; think and speak with vigilance.
  Gossip and hasty words; all talk and no action.

Knight | ambition, action, drive, haste
  Ambitious, fast-thinking action; charging ahead to defend an idea.
  Reckless haste, aggression or wounding words; rushing in without a plan.

Queen | clear boundaries, independence, honest communication, perception
  Clear judgement, independence and honest words; perception sharpened by experience.
  Coldness, bitterness or cruelty; judgement clouded by past hurt.

King | intellectual power, authority, truth, clear thinking
  Intellectual authority, truth and fair judgement; lead with clear thinking.
  Manipulation, tyranny or the abuse of intellect and power.
"""

_PENTACLES = """
Ace | new financial opportunity, prosperity, manifestation, security
  A new opportunity for prosperity and material security; a seed ready to grow.
  A lost opportunity or poor financial planning; prosperity delayed.

Two | balance, adaptability, juggling priorities, time management
  Juggling priorities with adaptability; keeping your balance as things change.
  Overcommitment, disorganisation and financial strain.

Three | teamwork, collaboration, craftsmanship, learning
  Teamwork, skilled craftsmanship and shared effort; your work is recognised.
  Poor teamwork, misaligned goals or careless work.

Four | security, saving, control, possessiveness
  Security through saving and control; holding tightly to what you have.
  Greed and materialism, or overspending and letting go too far.

Five | hardship, poverty, isolation, worry
  Hardship, financial loss and isolation; help is near if you look for it.
  Recovery from hardship; material or spiritual improvement.

Six | generosity, charity, giving and receiving, sharing wealth
  Generosity, charity and shared wealth; giving and receiving in balance.
  Strings attached, debt or one-sided charity; power imbalances in giving.

Seven | patience, long-term view, investment, assessment
  Patience and a long-term view; pause to assess the growth of your investment.
  Impatience, meagre reward, or effort spent in the wrong place.

Eight | diligence, skill, mastery, apprenticeship
  Diligent work and mastery through practice; dedication to your craft.
  Perfectionism, or a lack of focus and motivation; repetitive work without growth.

Nine | abundance, independence, self-sufficiency, luxury
  Self-sufficiency, abundance and the rewards of discipline; enjoy what you have earned.
  Overwork, or living beyond your means; financial setbacks.

Ten | wealth, legacy, family, long-term success
  Lasting wealth, family legacy and long-term security.
  Family disputes over money, or the loss of a legacy; financial failure.

Page | ambition, diligence, new venture, study
  A diligent student; a new venture or course of study pursued with practical ambition.
  Procrastination or a lack of progress; learning from failure.

Knight | hard work, routine, responsibility, reliability
  Hard work, routine and reliable effort; slow and steady progress.
  Boredom, laziness or stagnation; feeling stuck in routine.

Queen | nurturing, practicality, providing, down-to-earth
  Practical, nurturing and financially secure; she provides for herself and others.
  An imbalance of work and home, or self-neglect; smothering or financial insecurity.

King | wealth, business, leadership, security, discipline
  Wealth, business success and disciplined leadership; security built over time.
  Greed, stubbornness or poor financial decisions; obsession with wealth and status.
"""


def _blocks(text: str) -> list[tuple[str, tuple[str, ...], str, str]]:
    """(header name, keywords, upright, reversed) from the text blocks above."""
    parsed = []
    for block in text.strip().split("\n\n"):
        header, upright, reversed_ = (line.strip() for line in block.splitlines())
        name, _, keywords = header.partition(" | ")
        parsed.append((name, tuple(keywords.split(", ")), upright, reversed_))
    return parsed


def _slug(name: str) -> str:
    return name.lower().replace(" ", "-")


def _build() -> tuple[Card, ...]:
    cards = [
        Card(
            id=f"major-{number:02d}-{_slug(name)}",
            name=name,
            arcana=Arcana.MAJOR,
            suit=None,
            number=number,
            rank=None,
            keywords=keywords,
            upright_meaning=upright,
            reversed_meaning=reversed_,
        )
        for number, (name, keywords, upright, reversed_) in enumerate(_blocks(_MAJOR))
    ]
    for suit, text in zip(Suit, (_WANDS, _CUPS, _SWORDS, _PENTACLES), strict=True):
        blocks = _blocks(text)
        # The headers must list the ranks in order: a slip in the table fails at import.
        if [name for name, *_ in blocks] != [rank.label for rank in Rank]:
            raise ValueError(f"the {suit} table does not list the ranks Ace to King in order")
        cards.extend(
            Card(
                id=f"{suit}-{rank}",
                name=f"{rank.label} of {suit.capitalize()}",
                arcana=Arcana.MINOR,
                suit=suit,
                number=rank.number,
                rank=rank,
                keywords=keywords,
                upright_meaning=upright,
                reversed_meaning=reversed_,
            )
            for rank, (_, keywords, upright, reversed_) in zip(Rank, blocks, strict=True)
        )
    return tuple(cards)


DECK: tuple[Card, ...] = _build()
"""All 78 cards: the major arcana 0 to 21, then Wands, Cups, Swords, Pentacles, Ace to King."""
CARDS_BY_ID: Mapping[str, Card] = MappingProxyType({card.id: card for card in DECK})


def card_by_id(card_id: str) -> Card:
    """The card with this id (`major-00-the-fool`, `cups-queen`); KeyError if there is none."""
    try:
        return CARDS_BY_ID[card_id]
    except KeyError:
        raise KeyError(f"unknown tarot card id {card_id!r}") from None
