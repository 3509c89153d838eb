//! Formulas against a tenant's fields: resolving references, ordering formula fields so
//! each is computed after the formulas it reads, refusing cycles, and computing them all.

use std::collections::BTreeMap;

use super::{FieldRef, Formula, FormulaError};
use crate::domain::field::{FieldDef, FieldType, FieldValue, Finite};

/// The field a reference names: by id, or by exact name.
pub fn resolve<'a>(r: &FieldRef, defs: &'a [FieldDef]) -> Option<&'a FieldDef> {
    resolve_index(r, defs).map(|i| &defs[i])
}

fn resolve_index(r: &FieldRef, defs: &[FieldDef]) -> Option<usize> {
    match r {
        FieldRef::Id(id) => defs.iter().position(|d| d.id == *id),
        FieldRef::Name(name) => defs.iter().position(|d| d.name == *name),
    }
}

/// Checks every formula in `defs` (each reference names a number or formula field) and
/// returns the ids of the formula fields in an order where every formula comes after the
/// formulas it refers to; ties keep the order of `defs`. Refuses cycles, naming the
/// fields along one. Run it whenever a field is created, renamed, retyped or deleted.
pub fn evaluation_order(defs: &[FieldDef]) -> Result<Vec<i64>, FormulaError> {
    let formula_idx: Vec<usize> = (0..defs.len())
        .filter(|&i| defs[i].field_type == FieldType::Formula)
        .collect();
    // deps[k]: the formulas (as positions in `formula_idx`) that formula k reads.
    let mut deps: Vec<Vec<usize>> = Vec::with_capacity(formula_idx.len());
    for &i in &formula_idx {
        let def = &defs[i];
        let formula = formula_of(def)?;
        let mut mine = Vec::new();
        for r in formula.references() {
            let target = resolve_index(&r, defs).ok_or_else(|| FormulaError::UnknownField {
                field: def.name.clone(),
                reference: r.to_string(),
            })?;
            let field_type = defs[target].field_type;
            if !field_type.is_numeric() {
                return Err(FormulaError::NotNumeric {
                    field: def.name.clone(),
                    reference: r.to_string(),
                    field_type,
                });
            }
            if let Some(k) = formula_idx.iter().position(|&f| f == target) {
                if !mine.contains(&k) {
                    mine.push(k);
                }
            }
        }
        deps.push(mine);
    }

    // Depth-first post-order; recursion depth is bounded by the number of formula fields.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    struct Walk<'a> {
        defs: &'a [FieldDef],
        formula_idx: &'a [usize],
        deps: &'a [Vec<usize>],
        marks: Vec<Mark>,
        path: Vec<usize>,
        order: Vec<i64>,
    }
    impl Walk<'_> {
        fn visit(&mut self, k: usize) -> Result<(), FormulaError> {
            match self.marks[k] {
                Mark::Done => return Ok(()),
                Mark::Active => {
                    let from = self.path.iter().position(|&p| p == k).unwrap_or(0);
                    let mut fields: Vec<String> = self.path[from..]
                        .iter()
                        .map(|&p| self.defs[self.formula_idx[p]].name.clone())
                        .collect();
                    fields.push(self.defs[self.formula_idx[k]].name.clone());
                    return Err(FormulaError::Cycle { fields });
                }
                Mark::New => {}
            }
            self.marks[k] = Mark::Active;
            self.path.push(k);
            let deps = self.deps;
            for &dep in &deps[k] {
                self.visit(dep)?;
            }
            self.path.pop();
            self.marks[k] = Mark::Done;
            self.order.push(self.defs[self.formula_idx[k]].id);
            Ok(())
        }
    }
    let mut walk = Walk {
        defs,
        formula_idx: &formula_idx,
        deps: &deps,
        marks: vec![Mark::New; formula_idx.len()],
        path: Vec::new(),
        order: Vec::with_capacity(formula_idx.len()),
    };
    for k in 0..formula_idx.len() {
        walk.visit(k)?;
    }
    Ok(walk.order)
}

/// Computes every formula field of `defs` from `values` (field id → value; formula
/// entries in it are ignored and recomputed). Returns each formula field's new value:
/// a number, or [`FieldValue::Null`] when an operand is unset or the result undefined.
pub fn evaluate_formulas(
    defs: &[FieldDef],
    values: &BTreeMap<i64, FieldValue>,
) -> Result<BTreeMap<i64, FieldValue>, FormulaError> {
    let mut computed: BTreeMap<i64, FieldValue> = BTreeMap::new();
    for id in evaluation_order(defs)? {
        let Some(def) = defs.iter().find(|d| d.id == id) else {
            continue;
        };
        let formula = formula_of(def)?;
        let result = formula.eval(|r| {
            let target = resolve(r, defs)?;
            let value = if target.field_type == FieldType::Formula {
                computed.get(&target.id)?
            } else {
                values.get(&target.id)?
            };
            match value {
                FieldValue::Number(x) => Some(x.get()),
                _ => None,
            }
        });
        let value = result
            .and_then(Finite::new)
            .map_or(FieldValue::Null, FieldValue::Number);
        computed.insert(id, value);
    }
    Ok(computed)
}

fn formula_of(def: &FieldDef) -> Result<&Formula, FormulaError> {
    def.formula.as_ref().ok_or_else(|| FormulaError::MissingFormula {
        field: def.name.clone(),
    })
}
