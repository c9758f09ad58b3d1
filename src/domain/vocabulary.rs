//! The closed vocabularies of relationship marketing: kinds, markets, levels, bonds, channels and their rules.

use super::values::InvalidValue;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Declares a closed vocabulary with its stored spelling (the variant name in SCREAMING_SNAKE_CASE).
macro_rules! vocabulary {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored and wire spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = InvalidValue;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $($text => Ok($name::$variant),)+
                    other => Err(InvalidValue(format!(
                        "'{other}' is not a {}; use one of {}",
                        stringify!($name),
                        [$($text),+].join(", ")
                    ))),
                }
            }
        }
    };
}

vocabulary!(
    /// What a stakeholder is; each kind has its own fields and primary market.
    StakeholderKind {
        /// Buys the firm's products or services.
        Customer = "CUSTOMER",
        /// Supplies the firm (supplier and alliance market).
        Supplier = "SUPPLIER",
        /// An intermediary: wholesaler, retailer, agent.
        Distributor = "DISTRIBUTOR",
        /// Works for the firm, or is a candidate.
        Employee = "EMPLOYEE",
        /// A media outlet or journalist.
        Media = "MEDIA",
        /// A government body or regulator.
        Government = "GOVERNMENT",
    }
);

vocabulary!(
    /// The six markets of relationship marketing (Christopher, Payne and Ballantyne).
    Market {
        /// Buyers of the firm's offer.
        Customer = "CUSTOMER",
        /// Intermediaries and referrers who bring business.
        Referral = "REFERRAL",
        /// Suppliers and alliance partners.
        Supplier = "SUPPLIER",
        /// Media, government, regulators and other opinion formers.
        Influence = "INFLUENCE",
        /// Candidates and the labour market.
        Recruitment = "RECRUITMENT",
        /// The firm's own people.
        Internal = "INTERNAL",
    }
);

vocabulary!(
    /// A customer's lifecycle status.
    CustomerStatus {
        /// Not yet buying.
        Prospect = "PROSPECT",
        /// Buying.
        Active = "ACTIVE",
        /// Showing signs of leaving.
        AtRisk = "AT_RISK",
        /// Has left; see the exit reason.
        Churned = "CHURNED",
        /// Left and came back.
        WonBack = "WON_BACK",
    }
);

vocabulary!(
    /// Why a customer left.
    ExitReason {
        /// A cheaper offer elsewhere.
        Price = "PRICE",
        /// The product fell short.
        Product = "PRODUCT",
        /// The service fell short.
        Service = "SERVICE",
        /// The customer's market changed.
        Market = "MARKET",
        /// A technology shift made the offer obsolete.
        Technology = "TECHNOLOGY",
        /// Political or regulatory pressure.
        Political = "POLITICAL",
    }
);

vocabulary!(
    /// What a relationship-marketing programme is (docs/models.md, "Programme retention").
    ProgramKind {
        /// A frequency programme: rewards for cumulative spending.
        Frequency = "FREQUENCY",
        /// A customer club: membership with privileges and a community.
        Club = "CLUB",
        /// A customisation programme: the offer tailored to each member.
        Customisation = "CUSTOMISATION",
    }
);

vocabulary!(
    /// Mendelow's power/interest quadrant.
    Mendelow {
        /// High power, high interest.
        ManageClosely = "MANAGE_CLOSELY",
        /// High power, low interest.
        KeepSatisfied = "KEEP_SATISFIED",
        /// Low power, high interest.
        KeepInformed = "KEEP_INFORMED",
        /// Low power, low interest.
        Monitor = "MONITOR",
    }
);

vocabulary!(
    /// The type of a directed relationship.
    RelationshipType {
        /// Customer → the seller (a distributor or supplier).
        BuysFrom = "BUYS_FROM",
        /// Supplier → the party it supplies.
        Supplies = "SUPPLIES",
        /// Distributor → the party it distributes for.
        DistributesFor = "DISTRIBUTES_FOR",
        /// Employer → employee.
        Employs = "EMPLOYS",
        /// Relationship manager (an employee) → customer.
        Manages = "MANAGES",
        /// Referrer → the party it referred.
        Refers = "REFERS",
        /// Media → the party it covers.
        Covers = "COVERS",
        /// Government body → the party it regulates.
        Regulates = "REGULATES",
        /// Two partners.
        PartnersWith = "PARTNERS_WITH",
        /// Two people who know each other.
        Knows = "KNOWS",
        /// Influencer → the influenced.
        Influences = "INFLUENCES",
    }
);

vocabulary!(
    /// Kotler's relationship levels, from 1 (basic) to 5 (partnership).
    Level {
        /// Sells and does not follow up (1).
        Basic = "BASIC",
        /// Sells and invites the other to call with questions (2).
        Reactive = "REACTIVE",
        /// Checks back after the sale (3).
        Accountable = "ACCOUNTABLE",
        /// Contacts the other regularly with improvements (4).
        Proactive = "PROACTIVE",
        /// Works continuously with the other to deliver value (5).
        Partnership = "PARTNERSHIP",
    }
);

vocabulary!(
    /// A bond that ties a relationship.
    Bond {
        /// Prices, discounts, loyalty money.
        Financial = "FINANCIAL",
        /// Personal ties and attention.
        Social = "SOCIAL",
        /// Shared systems, processes, investments.
        Structural = "STRUCTURAL",
    }
);

vocabulary!(
    /// What a relationship grew from.
    Basis {
        /// Family ties.
        Kinship = "KINSHIP",
        /// Being neighbours or from one place.
        Geographic = "GEOGRAPHIC",
        /// Work and trade.
        Professional = "PROFESSIONAL",
        /// Shared culture, school or club.
        Cultural = "CULTURAL",
        /// A chance meeting.
        Incidental = "INCIDENTAL",
    }
);

vocabulary!(
    /// What an interaction was about (the customer database's transactions and contacts).
    Topic {
        /// An order placed.
        Order = "ORDER",
        /// Goods sent back.
        Return = "RETURN",
        /// A complaint.
        Complaint = "COMPLAINT",
        /// A question before or after buying.
        Inquiry = "INQUIRY",
        /// A service consultation.
        Service = "SERVICE",
        /// A promotion or offer.
        Promotion = "PROMOTION",
    }
);

vocabulary!(
    /// How an interaction happened.
    Channel {
        /// Face to face.
        Meeting = "MEETING",
        /// A conference, fair or hosted event.
        Event = "EVENT",
        /// A phone or video call.
        Call = "CALL",
        /// A purchase.
        Purchase = "PURCHASE",
        /// A support case.
        Support = "SUPPORT",
        /// A chat or text message.
        Message = "MESSAGE",
        /// An e-mail.
        Email = "EMAIL",
        /// A social-media exchange.
        Social = "SOCIAL",
        /// Press coverage or a press contact.
        Press = "PRESS",
        /// A regulatory filing.
        Filing = "FILING",
    }
);

vocabulary!(
    /// Who reached out.
    Direction {
        /// The stakeholder reached out to us.
        Inbound = "INBOUND",
        /// We reached out.
        Outbound = "OUTBOUND",
    }
);

impl StakeholderKind {
    /// The market a stakeholder of this kind belongs to first; employees who are candidates are in recruitment.
    pub fn primary_market(self, candidate: bool) -> Market {
        match self {
            StakeholderKind::Customer => Market::Customer,
            StakeholderKind::Supplier => Market::Supplier,
            StakeholderKind::Distributor => Market::Referral,
            StakeholderKind::Employee if candidate => Market::Recruitment,
            StakeholderKind::Employee => Market::Internal,
            StakeholderKind::Media | StakeholderKind::Government => Market::Influence,
        }
    }
}

impl Level {
    /// Kotler's number, 1 to 5.
    pub fn rank(self) -> u8 {
        self as u8 + 1
    }

    /// The level with Kotler's number `rank` (1 to 5).
    pub fn from_rank(rank: u8) -> Option<Self> {
        Self::ALL.get(usize::from(rank).checked_sub(1)?).copied()
    }
}

impl Mendelow {
    /// The quadrant for a power and interest in [0, 1]; 0.5 and above counts as high.
    pub fn of(power: f64, interest: f64) -> Self {
        match (power >= 0.5, interest >= 0.5) {
            (true, true) => Mendelow::ManageClosely,
            (true, false) => Mendelow::KeepSatisfied,
            (false, true) => Mendelow::KeepInformed,
            (false, false) => Mendelow::Monitor,
        }
    }
}

impl RelationshipType {
    /// Checks the kinds at both ends; most types are open, a few have a fixed shape.
    pub fn check_ends(self, from: StakeholderKind, to: StakeholderKind) -> Result<(), InvalidValue> {
        use StakeholderKind::*;
        let allowed = match self {
            RelationshipType::Manages => from == Employee && to == Customer,
            RelationshipType::Employs => to == Employee,
            RelationshipType::BuysFrom => from == Customer || from == Distributor,
            RelationshipType::Supplies => from == Supplier,
            RelationshipType::DistributesFor => from == Distributor,
            RelationshipType::Covers => from == Media,
            RelationshipType::Regulates => from == Government,
            _ => true,
        };
        if allowed {
            Ok(())
        } else {
            Err(InvalidValue(format!("a {self} relationship cannot go from a {from} to a {to}; {}", self.shape_hint())))
        }
    }

    fn shape_hint(self) -> &'static str {
        match self {
            RelationshipType::Manages => "MANAGES goes from an EMPLOYEE (the relationship manager) to a CUSTOMER",
            RelationshipType::Employs => "EMPLOYS goes to an EMPLOYEE",
            RelationshipType::BuysFrom => "BUYS_FROM goes from a CUSTOMER or DISTRIBUTOR to the seller",
            RelationshipType::Supplies => "SUPPLIES goes from a SUPPLIER",
            RelationshipType::DistributesFor => "DISTRIBUTES_FOR goes from a DISTRIBUTOR",
            RelationshipType::Covers => "COVERS goes from MEDIA",
            RelationshipType::Regulates => "REGULATES goes from a GOVERNMENT body",
            _ => "any kinds may be joined",
        }
    }
}

/// A set of values of a small vocabulary, stored as a bit mask.
macro_rules! bit_set {
    ($(#[$doc:meta])* $set:ident of $item:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $set(u8);

        impl $set {
            /// The empty set.
            pub const EMPTY: $set = $set(0);

            /// The set holding exactly `items`.
            pub fn of(items: impl IntoIterator<Item = $item>) -> Self {
                items.into_iter().fold(Self::EMPTY, |set, item| set.with(item))
            }

            /// This set with `item` added.
            pub fn with(self, item: $item) -> Self {
                $set(self.0 | (1 << item as u8))
            }

            /// Whether `item` is in the set.
            pub fn contains(self, item: $item) -> bool {
                self.0 & (1 << item as u8) != 0
            }

            /// The union of both sets.
            pub fn union(self, other: $set) -> Self {
                $set(self.0 | other.0)
            }

            /// Whether the sets share an item.
            pub fn intersects(self, other: $set) -> bool {
                self.0 & other.0 != 0
            }

            /// How many items it holds.
            pub fn len(self) -> usize {
                self.0.count_ones() as usize
            }

            /// Whether it holds nothing.
            pub fn is_empty(self) -> bool {
                self.0 == 0
            }

            /// The items, in declaration order.
            pub fn iter(self) -> impl Iterator<Item = $item> {
                $item::ALL.iter().copied().filter(move |item| self.contains(*item))
            }

            /// The stored bit mask.
            pub fn bits(self) -> u8 {
                self.0
            }

            /// The set for a stored bit mask; unknown bits are dropped.
            pub fn from_bits(bits: u8) -> Self {
                $set(bits & ((1u16 << $item::ALL.len()) - 1) as u8)
            }
        }

        impl Serialize for $set {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_seq(self.iter())
            }
        }

        impl<'de> Deserialize<'de> for $set {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                Ok(Self::of(Vec::<$item>::deserialize(deserializer)?))
            }
        }
    };
}

bit_set!(
    /// The markets a stakeholder takes part in.
    MarketSet of Market
);
bit_set!(
    /// The bonds of a relationship.
    BondSet of Bond
);
bit_set!(
    /// Interaction topics a page of interactions is filtered by (empty: any, topic or none).
    TopicSet of Topic
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_round_trips() {
        for kind in StakeholderKind::ALL {
            assert_eq!(kind.as_str().parse::<StakeholderKind>().unwrap(), *kind);
        }
        let error = "ROBOT".parse::<StakeholderKind>().unwrap_err();
        assert!(error.0.contains("CUSTOMER"), "{error}");
    }

    #[test]
    fn levels_rank_one_to_five() {
        assert_eq!(Level::Basic.rank(), 1);
        assert_eq!(Level::Partnership.rank(), 5);
        assert_eq!(Level::from_rank(3), Some(Level::Accountable));
        assert_eq!(Level::from_rank(0), None);
        assert_eq!(Level::from_rank(6), None);
    }

    #[test]
    fn primary_markets_follow_kind_and_candidacy() {
        assert_eq!(StakeholderKind::Distributor.primary_market(false), Market::Referral);
        assert_eq!(StakeholderKind::Employee.primary_market(true), Market::Recruitment);
        assert_eq!(StakeholderKind::Employee.primary_market(false), Market::Internal);
        assert_eq!(StakeholderKind::Government.primary_market(false), Market::Influence);
    }

    #[test]
    fn mendelow_quadrants() {
        assert_eq!(Mendelow::of(0.9, 0.9), Mendelow::ManageClosely);
        assert_eq!(Mendelow::of(0.9, 0.1), Mendelow::KeepSatisfied);
        assert_eq!(Mendelow::of(0.1, 0.9), Mendelow::KeepInformed);
        assert_eq!(Mendelow::of(0.1, 0.1), Mendelow::Monitor);
    }

    #[test]
    fn sets_hold_what_was_added() {
        let set = MarketSet::of([Market::Customer, Market::Referral]);
        assert!(set.contains(Market::Referral));
        assert!(!set.contains(Market::Internal));
        assert_eq!(set.len(), 2);
        assert_eq!(MarketSet::from_bits(set.bits()), set);
        let json = serde_json::to_string(&set).unwrap();
        assert_eq!(json, r#"["CUSTOMER","REFERRAL"]"#);
    }

    #[test]
    fn manages_goes_from_employee_to_customer() {
        use StakeholderKind::*;
        assert!(RelationshipType::Manages.check_ends(Employee, Customer).is_ok());
        assert!(RelationshipType::Manages.check_ends(Customer, Employee).is_err());
        assert!(RelationshipType::Knows.check_ends(Media, Government).is_ok());
    }
}
